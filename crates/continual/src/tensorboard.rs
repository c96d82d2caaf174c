//! TensorBoard event files of a run, written as the run goes: [`TensorBoard`] is a [`Plugin`]
//! that, at every hook, converts the lines the engine appended to `log.jsonl` since the last
//! hook into scalars of `<run>/events.out.tfevents.<time>.<host>.continual`.
//!
//! ```sh
//! tensorboard --logdir results            # every run is a TensorBoard run: smoke/mssr/0, ...
//! wandb sync --sync-tensorboard results/smoke/mssr/0   # the same files into Weights & Biases
//! ```
//!
//! | tags | step | from the log event |
//! |---|---|---|
//! | `train/loss`, `train/sft`, `train/kl`, `train/ntp`, `train/lr`, `train/grad_norm`, `train/replayed`, `train/allowance` | global step | `step` (`kl`/`ntp` only where the method has them) |
//! | `eval/<task>`, `probe/<probe>`, `eval/aa_so_far` | global step of the evaluation | `eval`: every task's and probe's score; AA so far = mean score of the tasks trained so far (stages ≥ 1) |
//! | `mssr/interval/<task>`, `mssr/mean_strength/<task>`, `mssr/relative_strength/<task>` | step of the replay | `interval` (MSSR's clock of the replayed task) |
//! | `mssr/strength/mean`, `mssr/strength/min`, `mssr/strength/max` | step | `strengths` (every buffered sample's memory strength at a task's end) |
//! | `measure/sharpness`, `train/rollback_lr` | step | `sharpness_probe`, `rollback` |
//!
//! The events are derived from `log.jsonl`, which the engine cuts back to its checkpoint on a
//! resume: the plugin therefore rebuilds the events file from the whole log at its first hook
//! (removing the run's older events files), so a resumed run's events equal an uninterrupted
//! run's, step for step (wall times aside: events rebuilt from old lines carry the rebuild's time).
//!
//! The file format is TensorFlow's record framing (length, masked CRC-32C of the length, an
//! `Event` protobuf, masked CRC-32C of it) with scalar summaries as `simple_value`. The two
//! TensorBoard writers on crates.io did not fit: `tensorboard-rs` pulls `protobuf` 2 (with
//! a known advisory) and `image` 0.23; `tboard` needs `protoc` at build time through
//! `prost-build`. Three message types declared with `prost`'s derive, and `crc32c`, both already
//! built for Burn, do the same in a page.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{HookContext, Plugin, StepRecord};

/// `tensorflow.Event`: only the fields written here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `brain.Event:2` in a file's first event.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The values.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// Tagged values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a scalar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The tag (`train/loss`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// TensorFlow's masked CRC-32C: `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: `u64` length (little endian), masked CRC of the length, data, masked CRC of it.
pub fn record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The scalars of one `log.jsonl` event, `(step, [(tag, value)])`; `None` for events without
/// any. `tasks` and `probes` name the scores of `eval` events.
pub fn scalars(
    event: &serde_json::Value,
    tasks: &[String],
    probes: &[String],
) -> Option<(i64, Vec<(String, f64)>)> {
    let step = event["step"].as_i64()?;
    let mut v: Vec<(String, f64)> = vec![];
    let mut put = |tag: String, x: &serde_json::Value| {
        if let Some(x) = x.as_f64() {
            v.push((tag, x));
        }
    };
    let task_name = |i: &serde_json::Value| {
        i.as_u64()
            .and_then(|i| tasks.get(i as usize).cloned())
            .unwrap_or_else(|| format!("task{i}"))
    };
    match event["type"].as_str()? {
        "step" => {
            for k in [
                "loss",
                "sft",
                "kl",
                "ntp",
                "lr",
                "grad_norm",
                "replayed",
                "allowance",
            ] {
                put(format!("train/{k}"), &event[k]);
            }
            // The method plugins' terms (EWC, LwF, DER++, O-LoRA, ...); KL and NTP are above.
            for (name, x) in event["terms"].as_object().into_iter().flatten() {
                if name != "kl" && name != "ntp" {
                    put(format!("train/{name}"), x);
                }
            }
        }
        "eval" => {
            let scores = event["scores"].as_array()?;
            for (name, s) in tasks.iter().zip(scores) {
                put(format!("eval/{name}"), s);
            }
            for (name, s) in probes.iter().zip(event["probe_scores"].as_array()?) {
                put(format!("probe/{name}"), s);
            }
            // After stage k the first k tasks are trained: AA so far is their mean score.
            let stage = event["stage"].as_u64()? as usize;
            let seen: Vec<f64> = scores
                .iter()
                .take(stage)
                .filter_map(|s| s.as_f64())
                .collect();
            if stage >= 1 && seen.len() == stage {
                v.push((
                    "eval/aa_so_far".into(),
                    seen.iter().sum::<f64>() / stage as f64,
                ));
            }
        }
        "interval" => {
            let t = task_name(&event["task"]);
            for k in ["interval", "mean_strength", "relative_strength"] {
                put(format!("mssr/{k}/{t}"), &event[k]);
            }
        }
        "strengths" => {
            let s: Vec<f64> = event["values"]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_f64())
                .collect();
            if !s.is_empty() {
                let mean = s.iter().sum::<f64>() / s.len() as f64;
                v.push(("mssr/strength/mean".into(), mean));
                v.push((
                    "mssr/strength/min".into(),
                    s.iter().copied().fold(f64::INFINITY, f64::min),
                ));
                v.push((
                    "mssr/strength/max".into(),
                    s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                ));
            }
        }
        "sharpness_probe" => put("measure/sharpness".into(), &event["sharpness"]),
        "rollback" => put("train/rollback_lr".into(), &event["lr"]),
        _ => {}
    }
    (!v.is_empty()).then_some((step, v))
}

/// The plugin: follows `<run>/log.jsonl` and writes its scalars to the run's events file.
/// Write errors are reported once on stderr and stop the plugin, never the run.
#[derive(Debug)]
pub struct TensorBoard {
    run_dir: PathBuf,
    tasks: Vec<String>,
    probes: Vec<String>,
    /// The events file and the bytes of `log.jsonl` converted so far; `None` before the first hook.
    out: Option<(std::fs::File, u64)>,
    failed: bool,
}

impl TensorBoard {
    /// The events of the run in `run_dir`, whose evaluations score `tasks` then `probes`.
    pub fn new(run_dir: &Path, tasks: Vec<String>, probes: Vec<String>) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            tasks,
            probes,
            out: None,
            failed: false,
        }
    }

    /// The events files of a run directory (TensorBoard reads every `*tfevents*` file).
    pub fn event_files(run_dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents."))
            })
            .collect();
        v.sort();
        v
    }

    /// Converts what the log gained since the last call.
    pub fn sync(&mut self) {
        if self.failed {
            return;
        }
        if let Err(e) = self.try_sync() {
            eprintln!(
                "tensorboard: {e}; no more events for {}",
                self.run_dir.display()
            );
            self.failed = true;
        }
    }

    fn try_sync(&mut self) -> std::io::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut buf = Vec::new();
        if self.out.is_none() {
            // A (re)started run: the log holds exactly the events to show; older files go.
            for f in Self::event_files(&self.run_dir) {
                std::fs::remove_file(&f)?;
            }
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| "localhost".into());
            let name = format!("events.out.tfevents.{}.{host}.continual", now as u64);
            let file = std::fs::File::create(self.run_dir.join(name))?;
            let first = Event {
                wall_time: now,
                step: 0,
                file_version: Some("brain.Event:2".into()),
                summary: None,
            };
            record(&prost::Message::encode_to_vec(&first), &mut buf);
            self.out = Some((file, 0));
        }
        let (file, done) = self.out.as_mut().expect("opened above");
        let mut log = match std::fs::File::open(self.run_dir.join("log.jsonl")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        log.seek(SeekFrom::Start(*done))?;
        let mut text = Vec::new();
        log.read_to_end(&mut text)?;
        // Only whole lines: the engine may be appending the next one.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in text[..whole]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let Ok(ev) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if let Some((step, values)) = scalars(&ev, &self.tasks, &self.probes) {
                let e = Event {
                    wall_time: now,
                    step,
                    file_version: None,
                    summary: Some(Summary {
                        value: values
                            .into_iter()
                            .map(|(tag, x)| SummaryValue {
                                tag,
                                simple_value: Some(x as f32),
                            })
                            .collect(),
                    }),
                };
                record(&prost::Message::encode_to_vec(&e), &mut buf);
            }
        }
        *done += whole as u64;
        file.write_all(&buf)?;
        file.flush()
    }
}

impl Plugin for TensorBoard {
    fn before_training_exp(&mut self, _ctx: &HookContext<'_>) {
        self.sync();
    }
    fn after_update(&mut self, _ctx: &HookContext<'_>, _step: &StepRecord) {
        self.sync();
    }
    fn after_training_exp(&mut self, _ctx: &HookContext<'_>) {
        self.sync();
    }
    fn after_eval(
        &mut self,
        _ctx: &HookContext<'_>,
        _stage: usize,
        _scores: &[f64],
        _probes: &[f64],
    ) {
        self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::manual_rotate)]
    fn crc32c_is_the_castagnoli_checksum() {
        // The check value of CRC-32C (RFC 3720, appendix B.4): "123456789" -> 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // Masking as TensorFlow's crc32c.h writes it: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
        let c = 0xE306_9283u32;
        assert_eq!(
            masked_crc(b"123456789"),
            ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn a_record_frames_the_data_with_its_length_and_both_checksums() {
        let mut out = vec![];
        record(b"abc", &mut out);
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(out[15..], masked_crc(b"abc").to_le_bytes());
    }

    #[test]
    fn an_eval_gives_every_score_and_aa_over_the_tasks_trained_so_far() {
        let tasks = vec!["a".to_string(), "b".into(), "c".into()];
        let ev = serde_json::json!({"type": "eval", "stage": 2, "step": 40, "scores": [0.5, 0.25, 0.0], "probe_scores": [0.75]});
        let (step, v) = scalars(&ev, &tasks, &["p".into()]).unwrap();
        assert_eq!(step, 40);
        assert_eq!(
            v,
            [
                ("eval/a".to_string(), 0.5),
                ("eval/b".into(), 0.25),
                ("eval/c".into(), 0.0),
                ("probe/p".into(), 0.75),
                ("eval/aa_so_far".into(), 0.375)
            ]
        );
        let before = serde_json::json!({"type": "eval", "stage": 0, "step": 0, "scores": [0.5, 0.25, 0.0], "probe_scores": []});
        assert!(
            !scalars(&before, &tasks, &[])
                .unwrap()
                .1
                .iter()
                .any(|(t, _)| t == "eval/aa_so_far")
        );
    }

    #[test]
    fn a_plugins_terms_become_scalars_and_kl_is_not_written_twice() {
        let e = serde_json::json!({"type": "step", "step": 3, "loss": 2.0, "kl": 0.25,
            "terms": {"kl": 0.25, "ewc": 0.5}});
        let (step, tags) = scalars(&e, &[], &[]).unwrap();
        assert_eq!(step, 3);
        let count = |t: &str| tags.iter().filter(|(g, _)| g == t).count();
        assert_eq!((count("train/kl"), count("train/ewc")), (1, 1));
        assert!(tags.contains(&("train/ewc".to_string(), 0.5)));
    }
}
