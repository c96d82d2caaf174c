//! Downloading the public originals into the data-directory layout (`cargo xtask data fetch`).
//!
//! What to fetch is a manifest ([`Manifest`], TOML): one entry per file, giving where it lies
//! and where it goes under the target directory. An entry names either a Hugging Face Hub
//! dataset file (`repo` + `file`, fetched from
//! `{base_url}/datasets/{repo}/resolve/{revision}/{file}`, `base_url` defaulting to
//! `https://huggingface.co`) or an absolute `url`. Downloads go to a temporary file that is
//! renamed into place when complete, so an interrupted run never leaves a truncated file;
//! existing files are skipped unless `force` is set. `HF_TOKEN`, when set, is sent as a bearer
//! token to hub URLs.
//!
//! The bundled manifest ([`Manifest::bundled`], `fetch-manifest.toml`) lists what could be
//! located without network access; see that file for which sources it covers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The Hugging Face Hub.
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co";

/// One file to download.
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

/// A list of files to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Default revision for hub entries. Default: `main`.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// The files.
    #[serde(default, rename = "file")]
    pub files: Vec<FetchEntry>,
}

fn default_revision() -> String {
    "main".to_string()
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
            if Path::new(&f.dest).is_absolute() || f.dest.split('/').any(|c| c == "..") {
                return Err(DataError::field(
                    path,
                    crate::Location::Index(i),
                    "dest",
                    "must be a relative path inside the target",
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
    /// Hub base URL. Default: [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Only entries whose group equals one of these or starts with one followed by `/`
    /// (empty: all).
    pub only: Vec<String>,
    /// Download files that already exist.
    pub force: bool,
    /// Per-request timeout. Default: 120 s.
    pub timeout: Duration,
    /// Bearer token for hub URLs. Default: none ([`FetchOptions::from_env`] reads `HF_TOKEN`).
    pub token: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            only: Vec::new(),
            force: false,
            timeout: Duration::from_secs(120),
            token: None,
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
    /// Files written.
    pub downloaded: Vec<PathBuf>,
    /// Files that existed and were left alone.
    pub skipped: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
}

/// The URL of an entry.
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

fn selected(entry: &FetchEntry, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            entry.group == *o
                || entry
                    .group
                    .strip_prefix(o.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
}

/// Downloads the manifest's (selected) files into `to`.
pub fn fetch(manifest: &Manifest, to: &Path, options: &FetchOptions) -> Result<FetchReport> {
    let agent = ureq::AgentBuilder::new().timeout(options.timeout).build();
    let mut report = FetchReport::default();
    let entries: Vec<&FetchEntry> = manifest
        .files
        .iter()
        .filter(|e| selected(e, &options.only))
        .collect();
    if entries.is_empty() && !options.only.is_empty() {
        return Err(DataError::Fetch {
            url: String::new(),
            message: format!("no manifest entry in groups {:?}", options.only),
        });
    }
    for entry in entries {
        let dest = to.join(&entry.dest);
        if dest.exists() && !options.force {
            report.skipped.push(dest);
            continue;
        }
        let url = entry_url(entry, manifest, &options.base_url);
        let mut req = agent.get(&url);
        if let (Some(token), None) = (&options.token, &entry.url) {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let resp = req.call().map_err(|e| DataError::Fetch {
            url: url.clone(),
            message: match e {
                ureq::Error::Status(code, r) => format!("HTTP {code} {}", r.status_text()),
                ureq::Error::Transport(t) => t.to_string(),
            },
        })?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        let tmp = dest.with_extension("part");
        let mut out = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let n = std::io::copy(&mut resp.into_reader(), &mut out).map_err(|e| DataError::Fetch {
            url: url.clone(),
            message: format!("reading body: {e}"),
        })?;
        out.flush().map_err(|e| DataError::io(&tmp, e))?;
        drop(out);
        std::fs::rename(&tmp, &dest).map_err(|e| DataError::io(&dest, e))?;
        report.bytes += n;
        report.downloaded.push(dest);
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
    use std::io::{BufRead, BufReader, Read};
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
        let rep = fetch(&manifest(M), to.path(), &opts).unwrap();
        assert_eq!(rep.downloaded.len(), 2);
        let got = crate::loaders::load_gsm8k(&to.path().join("gsm8k/train.jsonl")).unwrap();
        assert_eq!(got[0].answer, "#### 1");
        assert_eq!(
            std::fs::read_to_string(to.path().join("llm-cl-benchmark-500/agnews/test.json"))
                .unwrap(),
            "[]"
        );
        assert!(!to.path().join("gsm8k/train.part").exists());
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
        assert!(selected(&m.files[1], &["llm-cl".into()]));
        assert!(!selected(&m.files[1], &["llm".into()]));
        assert!(selected(&m.files[0], &[]));
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
}
