//! `[[dataset]]` entries of the fetch manifest against a local stand-in for the Hub dataset
//! viewer's `/rows` API: an HTTP/1.1 server on 127.0.0.1 that serves the rows of
//! `tests/fixtures/hub/<owner>/<name>/<config>/<split>.json` (each a `/rows` response holding the
//! whole split) sliced by `offset` and `length`, as the real API does. Every converter's output
//! is read back with the crate's own loaders, so the files provably have the formats the engine
//! reads.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_tasks::fetch::{FetchOptions, Manifest, fetch, fetch_to};
use bench_tasks::loaders;
use bench_tasks::suite::Source;
use serde_json::Value;

/// One request the server saw: the path with its query, and the Authorization header.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: Option<String>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A response: status, extra headers, body.
type Reply = (u16, Vec<(&'static str, String)>, String);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hub")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn query(path: &str) -> Vec<(String, String)> {
    path.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

/// The `/rows` API over the fixtures: 404 for an unknown split, 422 for a length over 100.
fn rows_api(path: &str) -> Reply {
    let q = query(path);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let (Some(dataset), Some(config), Some(split)) = (get("dataset"), get("config"), get("split"))
    else {
        return (
            422,
            vec![],
            r#"{"error":"Parameters 'dataset', 'config' and 'split' are required"}"#.into(),
        );
    };
    let offset: usize = get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let length: usize = get("length").and_then(|o| o.parse().ok()).unwrap_or(100);
    if !path.starts_with("/rows?") || length > 100 {
        return (
            422,
            vec![],
            r#"{"error":"Parameter 'length' must not be greater than 100"}"#.into(),
        );
    }
    let file = fixtures()
        .join(&dataset)
        .join(&config)
        .join(format!("{split}.json"));
    let Ok(text) = std::fs::read_to_string(&file) else {
        return (
            404,
            vec![],
            r#"{"error":"The dataset does not exist, or is not accessible without authentication (private or gated)."}"#
                .into(),
        );
    };
    let mut page: Value = serde_json::from_str(&text).unwrap();
    let rows = page["rows"].as_array().unwrap().clone();
    let slice: Vec<Value> = rows.into_iter().skip(offset).take(length).collect();
    page["rows"] = Value::Array(slice);
    (200, vec![], page.to_string())
}

/// Serves `handler(path, request number)` on 127.0.0.1 until the test ends.
fn serve(handler: impl Fn(&str, usize) -> Reply + Send + 'static) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
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
                if let Some((name, value)) = h.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    auth = Some(value.trim().to_string());
                }
            }
            log2.lock().unwrap().push(Seen {
                path: path.clone(),
                auth,
            });
            let (status, headers, body) = handler(&path, n);
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                422 => "Unprocessable Entity",
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                503 => "Service Unavailable",
                _ => "Status",
            };
            let mut resp = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str("\r\n");
            resp.push_str(&body);
            stream.write_all(resp.as_bytes()).ok();
        }
    });
    (format!("http://{addr}"), log)
}

fn hub() -> (String, Log) {
    serve(|path, _| rows_api(path))
}

fn options(base: &str) -> FetchOptions {
    FetchOptions {
        rows_base_url: base.to_string(),
        base_url: base.to_string(),
        backoff: Duration::from_millis(5),
        timeout: Duration::from_secs(10),
        ..FetchOptions::default()
    }
}

/// A manifest of one `[[dataset]]` entry.
fn entry(
    group: &str,
    dataset: &str,
    config: &str,
    split: &str,
    dest: &str,
    format: &str,
) -> String {
    format!(
        "[[dataset]]\ngroup = \"{group}\"\ndataset = \"{dataset}\"\nconfig = \"{config}\"\n\
         split = \"{split}\"\ndest = \"{dest}\"\nformat = \"{format}\"\n"
    )
}

fn manifest(text: &str) -> Manifest {
    Manifest::from_toml_str(text, Path::new("test.toml")).unwrap()
}

fn paths(log: &Log) -> Vec<String> {
    log.lock().unwrap().iter().map(|s| s.path.clone()).collect()
}

fn no_part_files(dir: &Path) -> bool {
    fn walk(d: &Path) -> bool {
        std::fs::read_dir(d).unwrap().all(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            !name.ends_with(".part") && (!p.is_dir() || walk(&p))
        })
    }
    walk(dir)
}

/// The manifest of gsm8k's train split, the entry most tests fetch.
fn gsm8k_train() -> Manifest {
    manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "train",
        "gsm8k/train.jsonl",
        "gsm8k_jsonl",
    ))
}

/// Options against the stand-in server with pages of `page_len` rows.
fn paged(base: &str, page_len: usize) -> FetchOptions {
    FetchOptions {
        page_len,
        ..options(base)
    }
}

#[test]
fn rows_are_paged_until_num_rows_total() {
    let (base, log) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = gsm8k_train();
    let rep = fetch(&m, to.path(), &paged(&base, 2)).unwrap();
    assert_eq!(
        paths(&log),
        [
            "/rows?dataset=openai/gsm8k&config=main&split=train&offset=0&length=2",
            "/rows?dataset=openai/gsm8k&config=main&split=train&offset=2&length=1",
        ]
    );
    assert_eq!(rep.rows, 3);
    assert_eq!(rep.downloaded, [to.path().join("gsm8k/train.jsonl")]);
    let got = Source::Gsm8k.load_split(to.path(), "train").unwrap();
    assert_eq!(got.len(), 3);
    assert!(got[2].prompt.contains("\"half\""));
}

#[test]
fn without_num_rows_total_paging_stops_at_a_short_page() {
    let (base, log) = serve(|path, _| {
        let (status, h, body) = rows_api(path);
        let mut v: Value = serde_json::from_str(&body).unwrap();
        v.as_object_mut().unwrap().remove("num_rows_total");
        (status, h, v.to_string())
    });
    let to = tempfile::tempdir().unwrap();
    let m = gsm8k_train();
    let rep = fetch(&m, to.path(), &paged(&base, 2)).unwrap();
    assert_eq!(rep.rows, 3);
    assert_eq!(paths(&log).len(), 2);
}

#[test]
fn gsm8k_rows_become_jsonl_the_gsm8k_loader_reads() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    fetch(&m, to.path(), &options(&base)).unwrap();
    let text = std::fs::read_to_string(to.path().join("gsm8k/test.jsonl")).unwrap();
    assert!(text.starts_with("{\"question\":\"Janet’s ducks"), "{text}");
    assert!(text.ends_with("#### 18\"}\n"), "{text}");
    let got = Source::Gsm8k.load_split(to.path(), "test").unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].answer.ends_with("#### 18"));
}

#[test]
fn arc_easy_rows_become_a_json_array_the_arc_loader_reads() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "arc-easy",
        "allenai/ai2_arc",
        "ARC-Easy",
        "train",
        "arc-easy/train.json",
        "arc_json_array",
    ));
    fetch(&m, to.path(), &options(&base)).unwrap();
    let text = std::fs::read_to_string(to.path().join("arc-easy/train.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["id"], "Mercury_7220990");
    let got = Source::ArcEasy.load_split(to.path(), "train").unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].answer, "B");
    assert_eq!(got[2].answer, "4");
    assert_eq!(got[2].options.as_deref().unwrap(), ["1", "2", "3", "4"]);
    assert!(
        got[2].prompt.ends_with("4. an iron nail\nAnswer:"),
        "{}",
        got[2].prompt
    );
}

#[test]
fn arc_challenge_rows_become_jsonl_the_arc_loader_reads() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "arc-challenge",
        "allenai/ai2_arc",
        "ARC-Challenge",
        "test",
        "arc-challenge/test.jsonl",
        "arc_jsonl",
    ));
    fetch(&m, to.path(), &options(&base)).unwrap();
    let got = Source::ArcChallenge.load_split(to.path(), "test").unwrap();
    assert_eq!(
        got.iter().map(|r| r.answer.as_str()).collect::<Vec<_>>(),
        ["C", "B"]
    );
    let text = std::fs::read_to_string(to.path().join("arc-challenge/test.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn mmlu_rows_become_one_csv_per_subject_the_mmlu_loader_reads() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "mmlu",
        "cais/mmlu",
        "all",
        "dev",
        "mmlu/dev",
        "mmlu_csv",
    ));
    let rep = fetch(&m, to.path(), &options(&base)).unwrap();
    assert_eq!(rep.downloaded, [to.path().join("mmlu/dev")]);
    let mut names: Vec<String> = std::fs::read_dir(to.path().join("mmlu/dev"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["abstract_algebra_dev.csv", "anatomy_dev.csv"]);
    let text =
        std::fs::read_to_string(to.path().join("mmlu/dev/abstract_algebra_dev.csv")).unwrap();
    assert!(
        text.starts_with("question,choice0,choice1,choice2,choice3,answer\n"),
        "{text}"
    );
    assert!(text.contains(",\"True, True\",\"False, False\","), "{text}");
    let all = Source::Mmlu(None).load_split(to.path(), "dev").unwrap();
    assert_eq!(
        all.iter().map(|r| r.answer.as_str()).collect::<Vec<_>>(),
        ["B", "B", "D"]
    );
    let anatomy = Source::Mmlu(Some("anatomy".into()))
        .load_split(to.path(), "dev")
        .unwrap();
    assert_eq!(anatomy.len(), 1);
    assert!(
        anatomy[0]
            .prompt
            .starts_with("The following is a multiple choice question about anatomy.\n\n")
    );
    assert!(
        anatomy[0]
            .prompt
            .contains("D. The second and \"third\" pharyngeal arches")
    );
}

#[test]
fn commonsenseqa_rows_become_ai2_jsonl_the_csqa_loader_reads() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "commonsenseqa",
        "tau/commonsense_qa",
        "default",
        "validation",
        "commonsenseqa/valid.jsonl",
        "csqa_jsonl",
    ));
    fetch(&m, to.path(), &options(&base)).unwrap();
    let text = std::fs::read_to_string(to.path().join("commonsenseqa/valid.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["answerKey"], "A");
    assert_eq!(first["id"], "1afa02df02c908a558b4036e80242fac");
    assert_eq!(first["question"]["question_concept"], "revolving door");
    assert_eq!(first["question"]["choices"][4]["label"], "E");
    assert_eq!(first["question"]["choices"][4]["text"], "new york");
    let got = Source::CommonsenseQa
        .load_split(to.path(), "valid")
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(got[0].prompt.starts_with("A revolving door is convenient"));
    assert!(got[0].prompt.ends_with("E. new york\nAnswer:"));
    assert_eq!(got[1].answer, "A");
}

#[test]
fn commonsenseqa_test_rows_have_no_answer_key_like_the_original() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "commonsenseqa",
        "tau/commonsense_qa",
        "default",
        "test",
        "commonsenseqa/test.jsonl",
        "csqa_jsonl",
    ));
    fetch(&m, to.path(), &options(&base)).unwrap();
    let path = to.path().join("commonsenseqa/test.jsonl");
    let row: Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert!(row.get("answerKey").is_none(), "{row}");
    assert_eq!(
        row["question"]["stem"],
        "The townhouse was a hard sell for the realtor, it was right next to a high rise what?"
    );
    // As with the original unlabelled test split, the loader names the missing key.
    let e = loaders::load_commonsenseqa(&path).unwrap_err().to_string();
    assert!(e.contains("line 1: field `answerKey`: missing"), "{e}");
}

#[test]
fn corpus_rows_become_text_lines_up_to_max_rows() {
    let (base, log) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&format!(
        "{}max_rows = 3\n",
        entry(
            "corpus/wikipedia",
            "wikimedia/wikipedia",
            "20231101.en",
            "train",
            "corpus/wikipedia.jsonl",
            "corpus_jsonl"
        )
    ));
    let rep = fetch(&m, to.path(), &paged(&base, 2)).unwrap();
    assert_eq!(rep.rows, 3);
    assert_eq!(
        paths(&log),
        [
            "/rows?dataset=wikimedia/wikipedia&config=20231101.en&split=train&offset=0&length=2",
            "/rows?dataset=wikimedia/wikipedia&config=20231101.en&split=train&offset=2&length=1",
        ]
    );
    // The third row is blank and dropped; the fourth is past max_rows.
    let texts = bench_tasks::load_corpus(to.path(), "wikipedia").unwrap();
    assert_eq!(texts.len(), 2);
    assert!(texts[0].starts_with("Anarchism is"));
    assert!(texts[0].contains("\n\nHistory\n"));
}

#[test]
fn corpus_drops_repeated_texts() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "corpus/openwebtext",
        "Skylion007/openwebtext",
        "plain_text",
        "train",
        "corpus/openwebtext.jsonl",
        "corpus_jsonl",
    ));
    fetch(&m, to.path(), &options(&base)).unwrap();
    let texts = bench_tasks::load_corpus(to.path(), "openwebtext").unwrap();
    assert_eq!(texts.len(), 2);
    assert!(texts[1].contains("\"bright\"") && texts[1].contains('\t') && texts[1].contains('\\'));
}

#[test]
fn server_errors_are_retried_then_succeed() {
    let (base, log) = serve(|path, n| match n {
        0 => (500, vec![], r#"{"error":"Internal Server Error"}"#.into()),
        1 => (429, vec![("Retry-After", "0".to_string())], String::new()),
        _ => rows_api(path),
    });
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    let rep = fetch(&m, to.path(), &options(&base)).unwrap();
    assert_eq!(rep.rows, 1);
    let seen = paths(&log);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|p| p == &seen[0]), "{seen:?}");
    assert_eq!(
        Source::Gsm8k.load_split(to.path(), "test").unwrap().len(),
        1
    );
}

#[test]
fn retries_stop_after_the_configured_count() {
    let (base, log) = serve(|_, _| (503, vec![], r#"{"error":"busy"}"#.into()));
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    let e = fetch(
        &m,
        to.path(),
        &FetchOptions {
            retries: 2,
            ..options(&base)
        },
    )
    .unwrap_err()
    .to_string();
    assert_eq!(paths(&log).len(), 3);
    assert!(
        e.contains("HTTP 503 Service Unavailable: busy (after 3 tries)"),
        "{e}"
    );
    assert!(!to.path().join("gsm8k/test.jsonl").exists());
}

#[test]
fn refused_connections_are_retried_then_reported_with_the_url() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    let e = fetch(
        &m,
        to.path(),
        &FetchOptions {
            retries: 1,
            ..options(&base)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("{base}/rows?dataset=openai/gsm8k")),
        "{e}"
    );
    assert!(e.contains("(after 2 tries)"), "{e}");
}

#[test]
fn missing_dataset_error_names_the_dataset_split_url_and_status() {
    let (base, log) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm9k",
        "main",
        "train",
        "gsm8k/train.jsonl",
        "gsm8k_jsonl",
    ));
    let e = fetch(&m, to.path(), &options(&base))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "{base}/rows?dataset=openai/gsm9k&config=main&split=train&offset=0&length=100"
        )),
        "{e}"
    );
    assert!(e.contains("openai/gsm9k config main split train"), "{e}");
    assert!(
        e.contains("HTTP 404 Not Found: The dataset does not exist"),
        "{e}"
    );
    // A client error is not retried.
    assert_eq!(paths(&log).len(), 1);
    assert!(!to.path().join("gsm8k/train.jsonl").exists());
}

#[test]
fn malformed_row_error_names_the_row_and_field() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "bad/gsm8k",
        "main",
        "train",
        "gsm8k/train.jsonl",
        "gsm8k_jsonl",
    ));
    let e = fetch(&m, to.path(), &options(&base))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad/gsm8k config main split train, row 1: field `question`: missing"),
        "{e}"
    );
    assert!(e.contains(&format!("{base}/rows?dataset=bad/gsm8k")), "{e}");
    assert!(!to.path().join("gsm8k/train.jsonl").exists());
    assert!(no_part_files(to.path()));
}

#[test]
fn truncated_cell_error_names_the_row_and_field() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "bad/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    let e = fetch(&m, to.path(), &options(&base))
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 0: field `question`: truncated"), "{e}");
}

#[test]
fn wrongly_shaped_rows_name_the_row_and_field() {
    let (base, _) = serve(|path, _| {
        let (status, h, body) = rows_api(path);
        let mut v: Value = serde_json::from_str(&body).unwrap();
        v["rows"][1]["row"]["answer"] = Value::from(7);
        v["rows"][1]["row"]["choices"] = serde_json::json!(["a", "b"]);
        (status, h, v.to_string())
    });
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "mmlu",
        "cais/mmlu",
        "all",
        "dev",
        "mmlu/dev",
        "mmlu_csv",
    ));
    let e = fetch(&m, to.path(), &options(&base))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 1: field `choices`: expected 4 options, found 2"),
        "{e}"
    );
    assert!(!to.path().join("mmlu/dev").exists());
    assert!(no_part_files(to.path()));
}

#[test]
fn a_response_that_is_not_a_rows_page_is_an_error_not_a_panic() {
    for body in [
        "<html>rate limited</html>",
        "{\"rows\": 3}",
        "{\"rows\": [{\"row\": 1}]}",
        "",
    ] {
        let (base, _) = serve(move |_, _| (200, vec![], body.to_string()));
        let to = tempfile::tempdir().unwrap();
        let m = manifest(&entry(
            "gsm8k",
            "openai/gsm8k",
            "main",
            "test",
            "gsm8k/test.jsonl",
            "gsm8k_jsonl",
        ));
        let e = fetch(&m, to.path(), &options(&base))
            .unwrap_err()
            .to_string();
        assert!(e.contains("openai/gsm8k config main split test"), "{e}");
        assert!(e.contains(&base), "{e}");
        assert!(!to.path().join("gsm8k/test.jsonl").exists());
    }
}

#[test]
fn an_empty_split_is_an_error() {
    let (base, _) = serve(|_, _| {
        (
            200,
            vec![],
            r#"{"features":[],"rows":[],"num_rows_total":0}"#.into(),
        )
    });
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    let e = fetch(&m, to.path(), &options(&base))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no rows"), "{e}");
}

#[test]
fn existing_destinations_are_skipped_unless_forced() {
    let (base, log) = hub();
    let to = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(to.path().join("gsm8k")).unwrap();
    std::fs::write(to.path().join("gsm8k/test.jsonl"), "old").unwrap();
    std::fs::create_dir_all(to.path().join("mmlu/dev")).unwrap();
    std::fs::write(to.path().join("mmlu/dev/anatomy_dev.csv"), "old").unwrap();
    let text = format!(
        "{}{}",
        entry(
            "gsm8k",
            "openai/gsm8k",
            "main",
            "test",
            "gsm8k/test.jsonl",
            "gsm8k_jsonl"
        ),
        entry("mmlu", "cais/mmlu", "all", "dev", "mmlu/dev", "mmlu_csv")
    );
    let m = manifest(&text);
    let rep = fetch(&m, to.path(), &options(&base)).unwrap();
    assert_eq!((rep.downloaded.len(), rep.skipped.len()), (0, 2));
    assert!(log.lock().unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(to.path().join("gsm8k/test.jsonl")).unwrap(),
        "old"
    );

    let rep = fetch(
        &m,
        to.path(),
        &FetchOptions {
            force: true,
            ..options(&base)
        },
    )
    .unwrap();
    assert_eq!((rep.downloaded.len(), rep.skipped.len()), (2, 0));
    assert_eq!(
        Source::Gsm8k.load_split(to.path(), "test").unwrap().len(),
        1
    );
    assert_eq!(
        Source::Mmlu(None)
            .load_split(to.path(), "dev")
            .unwrap()
            .len(),
        3
    );
    assert!(no_part_files(to.path()));
}

#[test]
fn an_empty_folder_does_not_count_as_fetched() {
    let (base, _) = hub();
    let to = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(to.path().join("mmlu/dev")).unwrap();
    let m = manifest(&entry(
        "mmlu",
        "cais/mmlu",
        "all",
        "dev",
        "mmlu/dev",
        "mmlu_csv",
    ));
    let rep = fetch(&m, to.path(), &options(&base)).unwrap();
    assert_eq!(rep.downloaded.len(), 1);
    assert_eq!(
        Source::Mmlu(None)
            .load_split(to.path(), "dev")
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn hf_token_is_sent_as_a_bearer_token_to_the_rows_api() {
    let (base, log) = hub();
    let to = tempfile::tempdir().unwrap();
    let m = manifest(&entry(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "gsm8k_jsonl",
    ));
    let opts = FetchOptions {
        token: Some("hf_abc".into()),
        ..options(&base)
    };
    fetch(&m, to.path(), &opts).unwrap();
    assert_eq!(
        log.lock().unwrap()[0].auth.as_deref(),
        Some("Bearer hf_abc")
    );
}

#[test]
fn only_selects_dataset_groups_by_prefix() {
    let (base, log) = hub();
    let to = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{}",
        entry(
            "gsm8k",
            "openai/gsm8k",
            "main",
            "test",
            "gsm8k/test.jsonl",
            "gsm8k_jsonl"
        ),
        entry(
            "corpus/openwebtext",
            "Skylion007/openwebtext",
            "plain_text",
            "train",
            "corpus/openwebtext.jsonl",
            "corpus_jsonl"
        )
    );
    let opts = FetchOptions {
        only: vec!["corpus".into()],
        ..options(&base)
    };
    let rep = fetch(&manifest(&text), to.path(), &opts).unwrap();
    assert_eq!(rep.downloaded, [to.path().join("corpus/openwebtext.jsonl")]);
    assert!(paths(&log).iter().all(|p| p.contains("openwebtext")));
}

/// The bundled manifest's Hub entries (names of datasets, configs and splits as the fixtures
/// have them) fetched with `fetch_to`: every destination lands where `Source::load_split` and
/// `load_corpus` look, in a format they read.
#[test]
fn bundled_manifest_dataset_entries_fill_the_layout_the_loaders_read() {
    let (base, _) = hub();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("data");
    let opts = FetchOptions {
        only: [
            "gsm8k",
            "arc-easy",
            "arc-challenge",
            "mmlu",
            "commonsenseqa",
            "corpus",
        ]
        .map(String::from)
        .to_vec(),
        ..options(&base)
    };
    let rep = fetch_to(None, &to, &opts).unwrap();
    assert_eq!(rep.downloaded.len(), Manifest::bundled().datasets.len());
    for (source, split, n) in [
        (Source::Gsm8k, "train", 3),
        (Source::Gsm8k, "test", 1),
        (Source::ArcEasy, "train", 3),
        (Source::ArcEasy, "validation", 1),
        (Source::ArcEasy, "test", 1),
        (Source::ArcChallenge, "train", 1),
        (Source::ArcChallenge, "test", 2),
        (Source::Mmlu(None), "dev", 3),
        (Source::Mmlu(None), "test", 1),
        (Source::CommonsenseQa, "train", 1),
        (Source::CommonsenseQa, "valid", 2),
    ] {
        let got = source
            .load_split(&to, split)
            .unwrap_or_else(|e| panic!("{source:?} {split}: {e}"));
        assert_eq!(got.len(), n, "{source:?} {split}");
    }
    assert!(to.join("commonsenseqa/test.jsonl").exists());
    assert_eq!(bench_tasks::load_corpus(&to, "wikipedia").unwrap().len(), 3);
    assert_eq!(
        bench_tasks::load_corpus(&to, "openwebtext").unwrap().len(),
        2
    );
    assert!(no_part_files(&to));
}
