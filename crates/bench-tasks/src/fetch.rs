//! Downloading the public originals into the data-directory layout (`cargo xtask data fetch`).
//!
//! What to fetch is a manifest ([`Manifest`], TOML) of two kinds of entries, each giving where
//! the data lies and where it goes under the target directory:
//!
//! - `[[dataset]]` ([`DatasetEntry`]): a split of a Hugging Face Hub dataset, read as JSON
//!   through the Hub's dataset viewer API (`{rows_base_url}/rows?dataset=..&config=..&split=..
//!   &offset=..&length=..`, `rows_base_url` defaulting to
//!   `https://datasets-server.huggingface.co`), paged [`MAX_PAGE_LEN`] rows at a time until the
//!   response's `num_rows_total` rows (or the entry's `max_rows`) are read, and converted by the
//!   entry's [`RowFormat`] into the layout's file format (the Hub stores these datasets as
//!   Parquet, which this crate does not read; the viewer serves the same rows as JSON).
//! - `[[file]]` ([`FetchEntry`]): one file copied as it is, either a Hub dataset file (`repo` +
//!   `file`, fetched from `{base_url}/datasets/{repo}/resolve/{revision}/{file}`, `base_url`
//!   defaulting to `https://huggingface.co`) or an absolute `url`.
//!
//! Writes go to a temporary file (the workspace's scheme, `formats::atomic`: `<dest>.tmp<pid>`;
//! a `<dest>.tmp<pid>/` folder for a converter that writes a folder) that is renamed into place
//! when complete, so an interrupted run never leaves a truncated file, and a later fetch removes
//! what a killed one left; existing destinations are skipped unless `force` is set. Requests
//! that fail with HTTP 429 or 5xx, or whose connection fails, are retried with exponential
//! backoff ([`FetchOptions::retries`], [`FetchOptions::backoff`]; a `Retry-After` header is
//! honoured up to a minute). `HF_TOKEN`, when set, is sent as a bearer token to the Hub (hub
//! `[[file]]` URLs and the rows API), never to other `url`s.
//!
//! Errors name the URL; for `[[dataset]]` entries also the dataset, config and split, and for
//! a malformed row its index in the split (`row_idx`) and the field. Bad responses are errors,
//! never panics.
//!
//! The bundled manifest ([`Manifest::bundled`], `fetch-manifest.toml`) lists the sources of the
//! layout of `../shared/data`; see that file for which sources it covers.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

mod convert;
mod rows;

/// The Hugging Face Hub.
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co";

/// The Hugging Face dataset viewer, whose `/rows` API serves `[[dataset]]` entries.
pub const DEFAULT_ROWS_BASE_URL: &str = "https://datasets-server.huggingface.co";

/// The most rows the `/rows` API returns per request.
pub const MAX_PAGE_LEN: usize = 100;

/// Longest wait between two tries of a request (also caps `Retry-After`).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// One file to download as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchEntry {
    /// Group name for `--only` (e.g. `gsm8k`, `llm-cl/agnews`).
    pub group: String,
    /// Hub dataset repository (`owner/name`); used with `file`.
    pub repo: Option<String>,
    /// Path of the file in the hub repository.
    pub file: Option<String>,
    /// Revision (branch, tag or commit) in the hub repository. Default: the manifest's.
    pub revision: Option<String>,
    /// An absolute URL instead of `repo` + `file`.
    pub url: Option<String>,
    /// Destination relative to the target directory (the data-directory layout).
    pub dest: String,
}

/// How the rows of a `[[dataset]]` entry become a file of the layout (manifest `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowFormat {
    /// `gsm8k_jsonl`: `openai/gsm8k` rows `{question, answer}` → JSONL of
    /// `{"question", "answer"}` (`gsm8k/{train,test}.jsonl`).
    #[serde(rename = "gsm8k_jsonl")]
    Gsm8kJsonl,
    /// `arc_json_array`: `allenai/ai2_arc` rows `{id, question, choices{text, label},
    /// answerKey}` → a JSON array of those rows (`arc-easy/{train,validation,test}.json`).
    #[serde(rename = "arc_json_array")]
    ArcJsonArray,
    /// `arc_jsonl`: the same rows, one a line (`arc-challenge/{train,test}.jsonl`).
    #[serde(rename = "arc_jsonl")]
    ArcJsonl,
    /// `mmlu_csv`: `cais/mmlu` rows `{question, subject, choices: [4 strings], answer: 0-3}`
    /// → one CSV per subject, `<dest>/<subject>_<split>.csv` (split `validation` is written
    /// `val`), header `question,choice0,choice1,choice2,choice3,answer`. `dest` is a folder
    /// (`mmlu/dev`, `mmlu/test`).
    #[serde(rename = "mmlu_csv")]
    MmluCsv,
    /// `csqa_jsonl`: `tau/commonsense_qa` rows `{id, question, question_concept,
    /// choices{label, text}, answerKey}` → the original AI2 JSONL
    /// `{"answerKey", "id", "question": {"question_concept", "choices": [{"label", "text"}],
    /// "stem"}}`; an empty `answerKey` (the unlabelled test split) is left out, as in the
    /// original (`commonsenseqa/{train,valid,test}.jsonl`).
    #[serde(rename = "csqa_jsonl")]
    CsqaJsonl,
    /// `corpus_jsonl`: any dataset with a `text` column → `{"text"}` a line; blank and
    /// repeated texts are dropped (`corpus/{wikipedia,openwebtext}.jsonl`).
    #[serde(rename = "corpus_jsonl")]
    CorpusJsonl,
}

impl RowFormat {
    /// The manifest name (`gsm8k_jsonl`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RowFormat::Gsm8kJsonl => "gsm8k_jsonl",
            RowFormat::ArcJsonArray => "arc_json_array",
            RowFormat::ArcJsonl => "arc_jsonl",
            RowFormat::MmluCsv => "mmlu_csv",
            RowFormat::CsqaJsonl => "csqa_jsonl",
            RowFormat::CorpusJsonl => "corpus_jsonl",
        }
    }

    /// Whether `dest` is a folder of files rather than one file.
    pub fn writes_folder(self) -> bool {
        self == RowFormat::MmluCsv
    }
}

/// One split of a Hugging Face Hub dataset, read through the dataset viewer's `/rows` API and
/// converted into the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// Group name for `--only` (e.g. `gsm8k`, `corpus/wikipedia`).
    pub group: String,
    /// Hub dataset repository (`owner/name`, e.g. `openai/gsm8k`).
    pub dataset: String,
    /// Dataset config (subset), e.g. `main`, `ARC-Easy`, `all`. Default: `default`.
    #[serde(default = "default_config")]
    pub config: String,
    /// Split on the Hub (`train`, `validation`, `test`, `dev`, ...).
    pub split: String,
    /// Destination relative to the target directory: a file, or a folder for
    /// [`RowFormat::MmluCsv`].
    pub dest: String,
    /// The converter.
    pub format: RowFormat,
    /// Read at most this many rows (the first ones). Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
}

fn default_config() -> String {
    "default".to_string()
}

impl DatasetEntry {
    /// `openai/gsm8k config main split train`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} config {} split {}",
            self.dataset, self.config, self.split
        )
    }
}

/// A list of files to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Default revision for hub `[[file]]` entries. Default: `main`.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// The `[[file]]` entries: files copied as they are.
    #[serde(default, rename = "file")]
    pub files: Vec<FetchEntry>,
    /// The `[[dataset]]` entries: Hub dataset splits converted into the layout.
    #[serde(default, rename = "dataset")]
    pub datasets: Vec<DatasetEntry>,
}

fn default_revision() -> String {
    "main".to_string()
}

/// Checks that `dest` is a relative path inside the target.
fn check_dest(path: &Path, i: usize, field: &str, dest: &str) -> Result<()> {
    if dest.is_empty()
        || Path::new(dest).is_absolute()
        || dest.starts_with('/')
        || dest.split(['/', '\\']).any(|c| c == "..")
    {
        return Err(DataError::field(
            path,
            crate::Location::Index(i),
            field,
            "must be a relative path inside the target",
        ));
    }
    Ok(())
}

impl Manifest {
    /// The manifest shipped with the crate (`fetch-manifest.toml`).
    pub fn bundled() -> Self {
        Self::from_toml_str(
            include_str!("../fetch-manifest.toml"),
            Path::new("fetch-manifest.toml"),
        )
        .expect("bundled fetch-manifest.toml is valid (checked by a test)")
    }

    /// Parses a manifest; `path` names it in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let m: Manifest = toml::from_str(text).map_err(|e| DataError::Syntax {
            path: path.to_path_buf(),
            at: crate::Location::File,
            message: e.to_string(),
        })?;
        let mut dests = HashSet::new();
        for (i, f) in m.files.iter().enumerate() {
            let ok = matches!(
                (&f.url, &f.repo, &f.file),
                (Some(_), None, None) | (None, Some(_), Some(_))
            );
            if !ok {
                return Err(DataError::field(
                    path,
                    crate::Location::Index(i),
                    "url/repo/file",
                    "give either `url` or both `repo` and `file`",
                ));
            }
            check_dest(path, i, "dest", &f.dest)?;
            if !dests.insert(f.dest.trim_end_matches('/')) {
                return Err(DataError::field(
                    path,
                    crate::Location::Index(i),
                    "dest",
                    format!("`{}` is the dest of an earlier entry too", f.dest),
                ));
            }
        }
        for (i, d) in m.datasets.iter().enumerate() {
            let field = |name: &str| format!("[[dataset]].{name}");
            for (name, value) in [
                ("dataset", &d.dataset),
                ("config", &d.config),
                ("split", &d.split),
            ] {
                if value.is_empty() || value.chars().any(char::is_whitespace) {
                    return Err(DataError::field(
                        path,
                        crate::Location::Index(i),
                        field(name),
                        "must be non-empty, without spaces",
                    ));
                }
            }
            check_dest(path, i, &field("dest"), &d.dest)?;
            if d.max_rows == Some(0) {
                return Err(DataError::field(
                    path,
                    crate::Location::Index(i),
                    field("max_rows"),
                    "must be at least 1",
                ));
            }
            if !dests.insert(d.dest.trim_end_matches('/')) {
                return Err(DataError::field(
                    path,
                    crate::Location::Index(i),
                    field("dest"),
                    format!("`{}` is the dest of an earlier entry too", d.dest),
                ));
            }
        }
        Ok(m)
    }

    /// Reads a manifest file.
    pub fn from_path(path: &Path) -> Result<Self> {
        Self::from_toml_str(&crate::loaders::read_text(path)?, path)
    }
}

/// Options of a fetch run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Hub base URL (`[[file]]` entries with `repo`). Default: [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Dataset viewer base URL (`[[dataset]]` entries). Default: [`DEFAULT_ROWS_BASE_URL`].
    pub rows_base_url: String,
    /// Only entries whose group equals one of these or starts with one followed by `/`
    /// (empty: all).
    pub only: Vec<String>,
    /// Download files that already exist.
    pub force: bool,
    /// Per-request timeout. Default: 120 s.
    pub timeout: Duration,
    /// Bearer token for the Hub. Default: none ([`FetchOptions::from_env`] reads `HF_TOKEN`).
    pub token: Option<String>,
    /// Rows per `/rows` request, 1 to [`MAX_PAGE_LEN`] (clamped). Default: 100.
    pub page_len: usize,
    /// Further tries of a request that failed transiently (HTTP 429/5xx, connection). Default: 4.
    pub retries: u32,
    /// Wait before the first retry, doubled for each further one. Default: 1 s.
    pub backoff: Duration,
    /// Print a line to stderr per entry fetched. Default: no.
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            rows_base_url: DEFAULT_ROWS_BASE_URL.to_string(),
            only: Vec::new(),
            force: false,
            timeout: Duration::from_secs(120),
            token: None,
            page_len: MAX_PAGE_LEN,
            retries: 4,
            backoff: Duration::from_secs(1),
            progress: false,
        }
    }
}

impl FetchOptions {
    /// Defaults with the token taken from `HF_TOKEN` when set.
    pub fn from_env() -> Self {
        Self {
            token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
            ..Self::default()
        }
    }
}

/// What a fetch run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Files (and, for folder converters, folders) written.
    pub downloaded: Vec<PathBuf>,
    /// Destinations that existed and were left alone.
    pub skipped: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
    /// Dataset rows read through the rows API.
    pub rows: u64,
}

/// The URL of a `[[file]]` entry.
pub fn entry_url(entry: &FetchEntry, manifest: &Manifest, base_url: &str) -> String {
    match (&entry.url, &entry.repo, &entry.file) {
        (Some(u), _, _) => u.clone(),
        (None, Some(repo), Some(file)) => format!(
            "{}/datasets/{repo}/resolve/{}/{file}",
            base_url.trim_end_matches('/'),
            entry.revision.as_deref().unwrap_or(&manifest.revision)
        ),
        _ => String::new(),
    }
}

/// Percent-encodes a query value, keeping unreserved characters and `/` (as in `owner/name`).
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `/rows` URL of a `[[dataset]]` entry's split, without paging parameters.
pub fn split_url(entry: &DatasetEntry, rows_base_url: &str) -> String {
    format!(
        "{}/rows?dataset={}&config={}&split={}",
        rows_base_url.trim_end_matches('/'),
        query_value(&entry.dataset),
        query_value(&entry.config),
        query_value(&entry.split)
    )
}

/// The `/rows` URL of one page of a `[[dataset]]` entry's split.
pub fn rows_url(entry: &DatasetEntry, rows_base_url: &str, offset: u64, length: usize) -> String {
    format!(
        "{}&offset={offset}&length={length}",
        split_url(entry, rows_base_url)
    )
}

fn selected(group: &str, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            group == o
                || group
                    .strip_prefix(o.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
}

/// An HTTP client that retries transient failures.
struct Http {
    agent: ureq::Agent,
    retries: u32,
    backoff: Duration,
}

impl Http {
    fn new(options: &FetchOptions) -> Self {
        Self {
            agent: ureq::AgentBuilder::new().timeout(options.timeout).build(),
            retries: options.retries,
            backoff: options.backoff,
        }
    }

    /// GETs `url`, retrying HTTP 429/5xx and failed connections; the error is a message (the
    /// caller adds the URL).
    fn get(&self, url: &str, token: Option<&str>) -> std::result::Result<ureq::Response, String> {
        let mut attempt: u32 = 0;
        loop {
            let mut req = self.agent.get(url);
            if let Some(token) = token {
                req = req.set("Authorization", &format!("Bearer {token}"));
            }
            let tries = if attempt == 0 {
                String::new()
            } else {
                format!(" (after {} tries)", attempt + 1)
            };
            let backoff = self
                .backoff
                .saturating_mul(1u32 << attempt.min(16))
                .min(MAX_WAIT);
            let wait = match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(code, resp)) => {
                    let transient = code == 429 || (500..600).contains(&code);
                    if !transient || attempt >= self.retries {
                        return Err(format!("{}{tries}", status_message(code, resp)));
                    }
                    retry_after(&resp).unwrap_or(backoff).min(MAX_WAIT)
                }
                Err(ureq::Error::Transport(t)) => {
                    let transient = matches!(
                        t.kind(),
                        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io
                    );
                    if !transient || attempt >= self.retries {
                        return Err(format!("{t}{tries}"));
                    }
                    backoff
                }
            };
            std::thread::sleep(wait);
            attempt += 1;
        }
    }
}

/// `HTTP 404 Not Found: <the server's error>`.
fn status_message(code: u16, resp: ureq::Response) -> String {
    let head = format!("HTTP {code} {}", resp.status_text());
    let mut body = String::new();
    let _ = resp.into_reader().take(4096).read_to_string(&mut body);
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or(body);
    let detail = snippet(detail.trim(), 300);
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

/// The first `max` characters of `s`, marked when cut.
fn snippet(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A `Retry-After` header in seconds.
fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    resp.header("Retry-After")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn atomic_error(e: formats::FormatError) -> DataError {
    match e {
        formats::FormatError::Io { path, source } => DataError::io(path, source),
        other => DataError::io(PathBuf::new(), std::io::Error::other(other.to_string())),
    }
}

/// Writes `bytes` to `dest` atomically (`formats::atomic`), creating its folder.
fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    formats::atomic::write_atomic(dest, bytes).map_err(atomic_error)
}

/// Writes `files` (name → bytes) into the folder `dest`: staged in `<dest>.tmp<pid>/`, which
/// becomes `dest` when `dest` does not exist yet; otherwise each file is renamed into it.
fn write_folder_atomic(dest: &Path, files: &[(String, Vec<u8>)]) -> Result<u64> {
    if let Some(parent) = dest.parent() {
        // Staging folders of killed fetches.
        formats::atomic::remove_stale_temporaries(parent).map_err(atomic_error)?;
    }
    let stage = formats::atomic::temporary_path(dest);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| DataError::io(&stage, e))?;
    }
    std::fs::create_dir_all(&stage).map_err(|e| DataError::io(&stage, e))?;
    let mut bytes = 0;
    for (name, data) in files {
        let p = stage.join(name);
        std::fs::write(&p, data).map_err(|e| DataError::io(&p, e))?;
        bytes += data.len() as u64;
    }
    if !dest.exists() {
        std::fs::rename(&stage, dest).map_err(|e| DataError::io(dest, e))?;
    } else {
        for (name, _) in files {
            let to = dest.join(name);
            std::fs::rename(stage.join(name), &to).map_err(|e| DataError::io(&to, e))?;
        }
        std::fs::remove_dir_all(&stage).map_err(|e| DataError::io(&stage, e))?;
    }
    Ok(bytes)
}

/// Whether a dataset entry's destination is already there: the file, or for a folder
/// converter a folder holding at least one file.
fn dataset_dest_exists(dest: &Path, format: RowFormat) -> bool {
    if format.writes_folder() {
        std::fs::read_dir(dest).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_file())))
    } else {
        dest.exists()
    }
}

fn fetch_file(
    http: &Http,
    entry: &FetchEntry,
    manifest: &Manifest,
    to: &Path,
    options: &FetchOptions,
    report: &mut FetchReport,
) -> Result<()> {
    let dest = to.join(&entry.dest);
    if dest.exists() && !options.force {
        report.skipped.push(dest);
        return Ok(());
    }
    let url = entry_url(entry, manifest, &options.base_url);
    let token = match &entry.url {
        None => options.token.as_deref(),
        Some(_) => None,
    };
    let resp = http.get(&url, token).map_err(|message| DataError::Fetch {
        url: url.clone(),
        message,
    })?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let mut out = formats::atomic::AtomicFile::create(&dest).map_err(atomic_error)?;
    // A failed read drops `out`, which removes the temporary.
    let n = std::io::copy(&mut resp.into_reader(), out.file()).map_err(|e| DataError::Fetch {
        url: url.clone(),
        message: format!("reading body: {e}"),
    })?;
    out.commit().map_err(atomic_error)?;
    if options.progress {
        eprintln!("{url} -> {} ({n} bytes)", dest.display());
    }
    report.bytes += n;
    report.downloaded.push(dest);
    Ok(())
}

fn fetch_dataset(
    http: &Http,
    entry: &DatasetEntry,
    to: &Path,
    options: &FetchOptions,
    report: &mut FetchReport,
) -> Result<()> {
    let dest = to.join(&entry.dest);
    if !options.force && dataset_dest_exists(&dest, entry.format) {
        report.skipped.push(dest);
        return Ok(());
    }
    let rows = rows::fetch_rows(http, entry, options)?;
    let output = convert::convert(entry, &rows).map_err(|e| DataError::Fetch {
        url: split_url(entry, &options.rows_base_url),
        message: format!("{}, {e}", entry.describe()),
    })?;
    let bytes = match output {
        convert::Output::File(data) => {
            write_atomic(&dest, &data)?;
            data.len() as u64
        }
        convert::Output::Folder(files) => {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
            }
            write_folder_atomic(&dest, &files)?
        }
    };
    if options.progress {
        eprintln!(
            "{} -> {} ({} rows, {bytes} bytes)",
            entry.describe(),
            dest.display(),
            rows.len()
        );
    }
    report.rows += rows.len() as u64;
    report.bytes += bytes;
    report.downloaded.push(dest);
    Ok(())
}

/// Downloads the manifest's (selected) entries into `to`: the `[[file]]` entries, then the
/// `[[dataset]]` entries, each in manifest order.
pub fn fetch(manifest: &Manifest, to: &Path, options: &FetchOptions) -> Result<FetchReport> {
    let http = Http::new(options);
    let mut report = FetchReport::default();
    let files: Vec<&FetchEntry> = manifest
        .files
        .iter()
        .filter(|e| selected(&e.group, &options.only))
        .collect();
    let datasets: Vec<&DatasetEntry> = manifest
        .datasets
        .iter()
        .filter(|e| selected(&e.group, &options.only))
        .collect();
    if files.is_empty() && datasets.is_empty() && !options.only.is_empty() {
        return Err(DataError::Fetch {
            url: String::new(),
            message: format!("no manifest entry in groups {:?}", options.only),
        });
    }
    for entry in files {
        fetch_file(&http, entry, manifest, to, options, &mut report)?;
    }
    for entry in datasets {
        fetch_dataset(&http, entry, to, options, &mut report)?;
    }
    Ok(report)
}

/// `cargo xtask data fetch`: the manifest at `manifest` (the bundled one when `None`), fetched
/// into `to`, created if missing.
pub fn fetch_to(manifest: Option<&Path>, to: &Path, options: &FetchOptions) -> Result<FetchReport> {
    let manifest = match manifest {
        Some(p) => Manifest::from_path(p)?,
        None => Manifest::bundled(),
    };
    std::fs::create_dir_all(to).map_err(|e| DataError::io(to, e))?;
    fetch(&manifest, to, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// Request paths and their Authorization headers, in arrival order.
    type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// A one-thread HTTP/1.1 server on 127.0.0.1 serving `files` (path → body), 404 otherwise;
    /// records request paths and Authorization headers. Stops after `max_requests`.
    fn serve(
        files: Vec<(&'static str, &'static str)>,
        max_requests: usize,
    ) -> (String, RequestLog) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).ok();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h
                        .strip_prefix("Authorization: ")
                        .or_else(|| h.strip_prefix("authorization: "))
                    {
                        auth = Some(v.trim().to_string());
                    }
                }
                log2.lock().unwrap().push((path.clone(), auth));
                let resp = match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                stream.write_all(resp.as_bytes()).ok();
                let _ = reader.read(&mut [0u8; 0]);
            }
        });
        (format!("http://{addr}"), log)
    }

    fn manifest(text: &str) -> Manifest {
        Manifest::from_toml_str(text, Path::new("m.toml")).unwrap()
    }

    const M: &str = r#"
        [[file]]
        group = "gsm8k"
        repo = "openai/gsm8k"
        file = "train.jsonl"
        dest = "gsm8k/train.jsonl"
        [[file]]
        group = "llm-cl/agnews"
        repo = "someone/llm-cl"
        file = "agnews/test.json"
        revision = "v1"
        dest = "llm-cl-benchmark-500/agnews/test.json"
    "#;

    #[test]
    fn fetch_writes_files_into_the_layout() {
        let (base, log) = serve(
            vec![
                (
                    "/datasets/openai/gsm8k/resolve/main/train.jsonl",
                    "{\"question\":\"q\",\"answer\":\"#### 1\"}\n",
                ),
                ("/datasets/someone/llm-cl/resolve/v1/agnews/test.json", "[]"),
            ],
            2,
        );
        let to = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            base_url: base,
            token: Some("tok".into()),
            ..FetchOptions::default()
        };
        // What a fetch killed mid-download left (pid 4000000000: no such process).
        std::fs::create_dir_all(to.path().join("gsm8k")).unwrap();
        std::fs::write(to.path().join("gsm8k/train.jsonl.tmp4000000000"), "half").unwrap();
        let rep = fetch(&manifest(M), to.path(), &opts).unwrap();
        assert_eq!(rep.downloaded.len(), 2);
        let got = crate::loaders::load_gsm8k(&to.path().join("gsm8k/train.jsonl")).unwrap();
        assert_eq!(got[0].answer, "#### 1");
        assert_eq!(
            std::fs::read_to_string(to.path().join("llm-cl-benchmark-500/agnews/test.json"))
                .unwrap(),
            "[]"
        );
        let left: Vec<_> = std::fs::read_dir(to.path().join("gsm8k"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["train.jsonl"], "no temporary is left");
        let log = log.lock().unwrap();
        assert_eq!(log[0].1.as_deref(), Some("Bearer tok"));
    }

    #[test]
    fn existing_files_are_skipped_unless_forced() {
        let (base, log) = serve(
            vec![("/datasets/openai/gsm8k/resolve/main/train.jsonl", "new")],
            1,
        );
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(to.path().join("gsm8k")).unwrap();
        std::fs::write(to.path().join("gsm8k/train.jsonl"), "old").unwrap();
        let only = vec!["gsm8k".to_string()];
        let opts = FetchOptions {
            base_url: base,
            only,
            ..FetchOptions::default()
        };
        let rep = fetch(&manifest(M), to.path(), &opts).unwrap();
        assert_eq!((rep.downloaded.len(), rep.skipped.len()), (0, 1));
        assert!(log.lock().unwrap().is_empty());
        let rep = fetch(
            &manifest(M),
            to.path(),
            &FetchOptions {
                force: true,
                ..opts
            },
        )
        .unwrap();
        assert_eq!(rep.downloaded.len(), 1);
        assert_eq!(
            std::fs::read_to_string(to.path().join("gsm8k/train.jsonl")).unwrap(),
            "new"
        );
    }

    #[test]
    fn http_error_names_the_url_and_status() {
        let (base, _) = serve(vec![], 1);
        let to = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            base_url: base.clone(),
            only: vec!["gsm8k".into()],
            ..FetchOptions::default()
        };
        let e = fetch(&manifest(M), to.path(), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "{base}/datasets/openai/gsm8k/resolve/main/train.jsonl"
            )),
            "{e}"
        );
        assert!(e.contains("HTTP 404"), "{e}");
        assert!(!to.path().join("gsm8k/train.jsonl").exists());
    }

    #[test]
    fn group_filter_matches_prefix_folders() {
        let m = manifest(M);
        assert!(selected(&m.files[1].group, &["llm-cl".into()]));
        assert!(!selected(&m.files[1].group, &["llm".into()]));
        assert!(selected(&m.files[0].group, &[]));
    }

    #[test]
    fn manifest_rejects_escaping_destinations_and_half_entries() {
        let bad = "[[file]]\ngroup='g'\nurl='http://x/y'\ndest='../y'\n";
        assert!(Manifest::from_toml_str(bad, Path::new("m")).is_err());
        let half = "[[file]]\ngroup='g'\nrepo='a/b'\ndest='y'\n";
        assert!(Manifest::from_toml_str(half, Path::new("m")).is_err());
    }

    #[test]
    fn fetch_to_reads_a_manifest_file_and_creates_the_target() {
        let (base, _) = serve(
            vec![("/datasets/openai/gsm8k/resolve/main/train.jsonl", "x")],
            1,
        );
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.toml");
        std::fs::write(&m, M).unwrap();
        let to = dir.path().join("new/data");
        let opts = FetchOptions {
            base_url: base,
            only: vec!["gsm8k".into()],
            ..FetchOptions::default()
        };
        let rep = fetch_to(Some(&m), &to, &opts).unwrap();
        assert_eq!(rep.downloaded, [to.join("gsm8k/train.jsonl")]);
        assert_eq!(rep.bytes, 1);
    }

    #[test]
    fn bundled_manifest_parses() {
        let m = Manifest::bundled();
        assert!(!m.files.is_empty());
    }

    #[test]
    fn hub_url_has_resolve_layout() {
        let m = manifest(M);
        assert_eq!(
            entry_url(&m.files[0], &m, "https://huggingface.co/"),
            "https://huggingface.co/datasets/openai/gsm8k/resolve/main/train.jsonl"
        );
    }

    #[test]
    fn bundled_manifest_reads_task_sets_from_the_hub_rows_api() {
        let m = Manifest::bundled();
        let has = |dataset: &str, config: &str, split: &str, dest: &str, format: RowFormat| {
            m.datasets.iter().any(|d| {
                d.dataset == dataset
                    && d.config == config
                    && d.split == split
                    && d.dest == dest
                    && d.format == format
            })
        };
        for split in ["train", "test"] {
            assert!(has(
                "openai/gsm8k",
                "main",
                split,
                &format!("gsm8k/{split}.jsonl"),
                RowFormat::Gsm8kJsonl
            ));
            assert!(has(
                "allenai/ai2_arc",
                "ARC-Challenge",
                split,
                &format!("arc-challenge/{split}.jsonl"),
                RowFormat::ArcJsonl
            ));
        }
        for split in ["train", "validation", "test"] {
            assert!(has(
                "allenai/ai2_arc",
                "ARC-Easy",
                split,
                &format!("arc-easy/{split}.json"),
                RowFormat::ArcJsonArray
            ));
        }
        for (split, dest) in [
            ("train", "train"),
            ("validation", "valid"),
            ("test", "test"),
        ] {
            assert!(has(
                "tau/commonsense_qa",
                "default",
                split,
                &format!("commonsenseqa/{dest}.jsonl"),
                RowFormat::CsqaJsonl
            ));
        }
        for split in ["dev", "test"] {
            assert!(has(
                "cais/mmlu",
                "all",
                split,
                &format!("mmlu/{split}"),
                RowFormat::MmluCsv
            ));
        }
        let corpora: Vec<&DatasetEntry> = m
            .datasets
            .iter()
            .filter(|d| d.format == RowFormat::CorpusJsonl)
            .collect();
        assert_eq!(corpora.len(), 2);
        assert!(
            corpora
                .iter()
                .all(|d| d.max_rows.is_some_and(|n| n <= 20_000))
        );
        assert!(
            m.datasets
                .iter()
                .any(|d| d.dest == "corpus/wikipedia.jsonl")
        );
        assert!(
            m.datasets
                .iter()
                .any(|d| d.dest == "corpus/openwebtext.jsonl")
        );
        // The GitHub exports stay `[[file]]` entries; gsm8k now comes from the Hub.
        assert!(m.files.iter().any(|f| f.group.starts_with("llm-cl/")));
        assert!(m.files.iter().any(|f| f.group.starts_with("superni/")));
        assert!(!m.files.iter().any(|f| f.group == "gsm8k"));
    }

    const D: &str = r#"
        [[dataset]]
        group = "mmlu"
        dataset = "cais/mmlu"
        config = "all"
        split = "dev"
        dest = "mmlu/dev"
        format = "mmlu_csv"
        [[dataset]]
        group = "corpus/wikipedia"
        dataset = "wikimedia/wikipedia"
        config = "20231101.en"
        split = "train"
        dest = "corpus/wikipedia.jsonl"
        format = "corpus_jsonl"
        max_rows = 10
    "#;

    #[test]
    fn dataset_entries_parse_with_format_names_and_defaults() {
        let m = manifest(D);
        assert_eq!(m.datasets.len(), 2);
        assert_eq!(m.datasets[0].format, RowFormat::MmluCsv);
        assert_eq!(m.datasets[0].format.name(), "mmlu_csv");
        assert_eq!(m.datasets[1].max_rows, Some(10));
        let no_config = manifest(
            "[[dataset]]\ngroup='c'\ndataset='tau/commonsense_qa'\nsplit='test'\n\
             dest='commonsenseqa/test.jsonl'\nformat='csqa_jsonl'\n",
        );
        assert_eq!(no_config.datasets[0].config, "default");
    }

    #[test]
    fn dataset_entries_with_unknown_formats_fields_or_bad_dests_are_rejected() {
        let base = "[[dataset]]\ngroup='g'\ndataset='a/b'\nsplit='train'\n";
        for bad in [
            format!("{base}dest='x.jsonl'\nformat='parquet'\n"),
            format!("{base}dest='x.jsonl'\nformat='gsm8k_jsonl'\ncolumns=1\n"),
            format!("{base}dest='../x.jsonl'\nformat='gsm8k_jsonl'\n"),
            format!("{base}dest='/x.jsonl'\nformat='gsm8k_jsonl'\n"),
            format!("{base}dest='x.jsonl'\nformat='gsm8k_jsonl'\nmax_rows=0\n"),
            format!("{base}dest='x.jsonl'\n"),
            "[[dataset]]\ngroup='g'\ndataset='a b'\nsplit='train'\ndest='x'\nformat='gsm8k_jsonl'\n"
                .to_string(),
        ] {
            assert!(Manifest::from_toml_str(&bad, Path::new("m")).is_err(), "{bad}");
        }
    }

    #[test]
    fn two_entries_with_one_dest_are_rejected() {
        let text = format!(
            "{M}\n[[dataset]]\ngroup='gsm8k'\ndataset='openai/gsm8k'\nconfig='main'\n\
             split='train'\ndest='gsm8k/train.jsonl'\nformat='gsm8k_jsonl'\n"
        );
        let e = Manifest::from_toml_str(&text, Path::new("m"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gsm8k/train.jsonl"), "{e}");
    }

    #[test]
    fn rows_url_pages_and_encodes_the_query() {
        let m = manifest(D);
        assert_eq!(
            rows_url(
                &m.datasets[1],
                "https://datasets-server.huggingface.co/",
                200,
                100
            ),
            "https://datasets-server.huggingface.co/rows?dataset=wikimedia/wikipedia\
             &config=20231101.en&split=train&offset=200&length=100"
        );
        let mut odd = m.datasets[0].clone();
        odd.config = "a&b c".into();
        assert!(rows_url(&odd, "http://h", 0, 1).contains("config=a%26b%20c&split=dev"));
    }
}
