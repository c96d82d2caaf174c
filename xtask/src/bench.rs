//! `cargo xtask bench`: forward and LoRA training-step throughput of a backbone on this
//! machine, beside PyTorch+PEFT on the same model, batch and threads (`xtask/bench/torch_peft_bench.py`).
//!
//! ```text
//! cargo xtask bench                       # SmolLM2-135M, batch 8 x 256, rank 8, 3 timed steps
//! cargo xtask bench --steps 1 --no-torch  # quicker, Rust only
//! cargo xtask bench --eval --batch 8 --seq 128 --steps 1   # evaluation examples/s
//! cargo xtask bench --suite experiments/suites/quick.toml --steps 1   # one stage: training vs evaluation
//! cargo xtask bench --sharpness --batch 2 --seq 64 --steps 3 # SAM and XSAM step cost
//! cargo xtask bench --fused-ab --no-torch --steps 3           # fused kernels off vs on, alternating
//! # SmolLM2-135M's architecture with random weights (no weight file; e.g. on a GPU machine):
//! cargo xtask bench --model experiments/models/smollm2-135m-instruct --random-weights \
//!     --device vulkan --torch-device cuda
//! ```
//! Results go to stdout and `results/bench/bench-<unix time>.json` (config, git revision, versions).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use backbone::{LoadedModel, TokenBatch};
use burn::optim::{AdamWConfig, GradientsParams};
use lora::{LoraSettings, LoraTargets};
use rand::{Rng, SeedableRng};

use crate::score::ModelSel;

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    sel: ModelSel,
    /// Sequences per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    seq: usize,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// LoRA rank (alpha = 2·rank, on q/k/v/o/gate/up/down).
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// Threads for PyTorch (Flex uses one per core: run on a 2-core machine, or pin with taskset).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Skip the PyTorch+PEFT reference.
    #[arg(long)]
    no_torch: bool,
    /// The Python interpreter that has torch, transformers and peft (a virtual environment's).
    #[arg(long, env = "CONTINUAL_PYTHON", default_value = "python3")]
    python: String,
    /// Benchmark evaluation instead: multiple-choice scoring and greedy generation,
    /// examples/s of the engine's batched paths against one sequence at a time.
    #[arg(long)]
    eval: bool,
    /// Time one stage of this suite as the engine runs it instead, with the `--ab` switch off
    /// and on, alternating: one evaluation row (every task and probe on its `eval_limit` test
    /// records, the suite's evaluation batch size and generation length, a fresh adapter) and a
    /// LoRA step (AdamW) on each task's first training batch.
    #[arg(long, value_name = "SUITE.toml")]
    suite: Option<PathBuf>,
    /// With `--suite`: `skip-padding` (`backbone::model::set_skip_padding`) or `merge`
    /// (evaluation through the adapter's factors, then merged: `eval_merge_adapter`).
    #[arg(long, default_value = "skip-padding", value_parser = ["skip-padding", "merge"])]
    ab: String,
    /// Benchmark SAM and XSAM (k = 1, ρ = 0.05, alpha_period = 100) against a plain AdamW
    /// LoRA step instead.
    #[arg(long)]
    sharpness: bool,
    /// Time the forward and the LoRA step with `backbone::fused` off and on, alternating step by
    /// step in this one process (so drift of the machine hits both alike), instead.
    #[arg(long)]
    fused_ab: bool,
    /// `--model` is a directory holding only a `config.json`: both sides build that architecture
    /// with random weights (throughput does not depend on the values; no weight file to carry).
    #[arg(long)]
    random_weights: bool,
    /// Device of the PyTorch reference: `cpu` or `cuda`.
    #[arg(long, default_value = "cpu")]
    torch_device: String,
}

/// The benchmarked model on `device`: the weights at `path`, or with `--random-weights` the
/// architecture of `path/config.json` with random weights (seed 0, std 0.02).
fn load_bench_model(
    args: &BenchArgs,
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<backbone::CausalLm> {
    if args.random_weights {
        let config = backbone::ModelConfig::from_file(&path.join("config.json"))
            .with_context(|| format!("--random-weights reads {}/config.json", path.display()))?;
        return Ok(backbone::random::random_model(&config, 0, 0.02, device));
    }
    Ok(LoadedModel::load(path, device)
        .with_context(|| format!("loading {}", path.display()))?
        .model)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn timed(warmup: usize, steps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let t = Instant::now();
    for _ in 0..steps {
        f();
    }
    t.elapsed().as_secs_f64() / steps as f64
}

/// Sizes `m × k × n` of the sgemm measurements: a large square product (what the machine can
/// do) and the model's biggest training product (8·256 tokens × hidden 576 → MLP 1536).
const SGEMM_SIZES: [[usize; 3]; 2] = [[2048, 2048, 2048], [2048, 576, 1536]];

/// FLOP/s of `C = A·B` (f32) on `device` through Burn's matmul (on the CPU: Flex's `gemm`),
/// best of `reps` after one warm-up, for each of [`SGEMM_SIZES`].
fn sgemm_flops(device: &burn::tensor::Device, reps: usize) -> Vec<f64> {
    use burn::tensor::{Distribution, Tensor};
    SGEMM_SIZES
        .iter()
        .map(|&[m, k, n]| {
            let a = Tensor::<2>::random([m, k], Distribution::Default, device);
            let b = Tensor::<2>::random([k, n], Distribution::Default, device);
            let mut best = f64::INFINITY;
            for i in 0..=reps {
                let t = Instant::now();
                let c = a.clone().matmul(b.clone());
                let _ = c.slice([0..1, 0..1]).into_scalar::<f32>(); // waits for the result
                if i > 0 {
                    best = best.min(t.elapsed().as_secs_f64());
                }
            }
            2.0 * (m * k * n) as f64 / best
        })
        .collect()
}

/// Evaluation throughput: `args.batch` multiple-choice records (a `args.seq`-token prompt, 4
/// options of 3 tokens) scored all together (`continuation_logprobs_batch`, as the engine
/// scores), record by record with each prompt shared by its options, and every option as its
/// own sequence,
/// and `args.batch` prompts decoded greedily for 16 tokens together vs one by one.
fn eval_bench(
    args: &BenchArgs,
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<serde_json::Value> {
    let model = &load_bench_model(args, path, device)?;
    let vocab = model.config.vocab_size as u32;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..vocab)).collect() };
    let records: Vec<(Vec<u32>, Vec<Vec<u32>>)> = (0..args.batch)
        .map(|_| (ids(args.seq), (0..4).map(|_| ids(3)).collect()))
        .collect();
    let shared_s = timed(1, args.steps, || {
        for (prompt, options) in &records {
            let _ = backbone::continuation_logprobs(model, prompt, options);
        }
    });
    let items: Vec<(&[u32], &[Vec<u32>])> = records
        .iter()
        .map(|(p, o)| (p.as_slice(), o.as_slice()))
        .collect();
    let batched_records_s = timed(1, args.steps, || {
        let _ = backbone::continuation_logprobs_batch(model, &items);
    });
    let naive_s = timed(1, args.steps, || {
        for (prompt, options) in &records {
            for o in options {
                let full: Vec<u32> = prompt.iter().chain(o).copied().collect();
                let _ = backbone::score::token_logprobs(model, &TokenBatch::single(&full));
            }
        }
    });
    let prompts: Vec<Vec<u32>> = records.iter().map(|(p, _)| p.clone()).collect();
    // No stop ids: every prompt decodes the full 16 tokens in both paths.
    let cfg = backbone::GenerateConfig {
        max_new_tokens: 16,
        ..Default::default()
    };
    let batched_s = timed(1, args.steps, || {
        let _ = backbone::generate_greedy_batch(model, &prompts, &cfg);
    });
    let single_s = timed(1, args.steps, || {
        for p in &prompts {
            let _ = backbone::generate(model, p, &cfg);
        }
    });
    let n = args.batch as f64;
    Ok(serde_json::json!({
        "mc_examples_per_s_records_batched": n / batched_records_s, "mc_examples_per_s_shared_prompt": n / shared_s, "mc_examples_per_s_one_sequence_per_option": n / naive_s,
        "gen16_examples_per_s_batched": n / batched_s, "gen16_examples_per_s_one_by_one": n / single_s,
    }))
}

/// One stage of `suite` as the engine runs it, with the `args.ab` switch off and on, alternating
/// (so that both see the same machine): an evaluation row (`continual::lm::evaluate_row`: the
/// option tasks one by one, the generative ones together) and a LoRA step on each task's first
/// training batch. Per task: seconds (the generative tasks' only together), training tokens
/// with and without padding, prompt tokens; in all: the tokens the row runs through the model
/// and the FLOP ratio of evaluation to training.
fn suite_bench(
    args: &BenchArgs,
    suite_path: &std::path::Path,
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<serde_json::Value> {
    let spec = bench_tasks::SuiteSpec::from_path(suite_path)?;
    let data_dir = bench_tasks::resolve_data_dir(None).unwrap_or_else(|_| PathBuf::from("."));
    let suite = spec.load(&data_dir, None)?;
    let sequential = continual::MethodConfig::from_path(std::path::Path::new(
        "experiments/methods/sequential.toml",
    ))?;
    let settings = sequential.train_settings(spec.training.as_ref(), &spec.path)?;
    let source = continual::ModelSource::Path {
        path: path.to_path_buf(),
    };
    let merge = args.ab == "merge";
    let set = |on: bool| {
        if !merge {
            backbone::model::set_skip_padding(on);
        }
    };
    // Evaluation: the engine's inference copy (merged as the settings say, or both ways).
    let mut scorer = continual::rescore::Scorer::new(&source, 0, &settings, &suite, device)?;
    scorer.add_fresh_adapter();
    let eval_models = [false, true].map(|on| {
        continual::lm::inference_model(
            scorer.model(),
            if merge {
                on
            } else {
                settings.eval_merge_adapter
            },
        )
    });
    // Training: the same model on the autodiff device, only the adapter trainable.
    let ad = device.clone().autodiff();
    let mut trainer = continual::rescore::Scorer::new(&source, 0, &settings, &suite, &ad)?;
    trainer.add_fresh_adapter();
    let mut model = lora::freeze_base(trainer.into_model());
    for name in lora::adapter_names(&model) {
        lora::set_adapter_trainable(&mut model, &name, true);
    }
    let mut slot = Some(model);
    let mut optim = AdamWConfig::new().init();
    let lr = settings.optim.lr;
    let sets = continual::lm::eval_sets(&suite, &settings);
    let batches: Vec<_> = suite
        .tasks
        .iter()
        .map(|task| {
            let encoded: Vec<bench_tasks::Encoded> = task
                .train
                .iter()
                .filter_map(|r| scorer.formatter().encode(task.system.as_deref(), r).ok())
                .take(settings.batch_size)
                .collect();
            continual::lm::sft_batch(&encoded.iter().collect::<Vec<_>>())
        })
        .collect();
    let mut task_eval_s = vec![[None; 2]; sets.len()];
    let mut task_train_s = vec![[0.0; 2]; batches.len()];
    let (mut eval_total, mut gen_total, mut train_total, mut tokens) =
        ([0.0; 2], [0.0; 2], [0.0; 2], 0);
    for round in 0..=args.steps {
        let share = if round == 0 {
            0.0
        } else {
            1.0 / args.steps as f64
        }; // round 0 warms up
        // The evaluation row, off then on.
        for (v, model) in eval_models.iter().enumerate() {
            set(v == 1);
            let t = Instant::now();
            let row = continual::lm::evaluate_row(
                model,
                scorer.formatter(),
                scorer.stop_ids(),
                &settings,
                &sets,
                |i, secs| {
                    if round == 1 {
                        task_eval_s[i][v] = secs;
                    }
                },
            );
            eval_total[v] += t.elapsed().as_secs_f64() * share;
            gen_total[v] += row.generative_seconds * share;
            tokens = row.tokens;
        }
        // A training step on each task's batch, off then on.
        for (i, batch) in batches.iter().enumerate() {
            for v in 0..2 {
                set(v == 1);
                let t = Instant::now();
                let m = slot.take().expect("model");
                let loss = finetune::sft_loss(&m, batch).mean;
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                slot = Some(optim.step(lr, m, grads));
                let secs = t.elapsed().as_secs_f64();
                train_total[v] += secs * share;
                if round == 1 {
                    task_train_s[i][v] = secs;
                }
            }
        }
        set(true);
    }
    let rows: Vec<serde_json::Value> = sets
        .iter()
        .enumerate()
        .map(|(i, (task, records))| {
            let prompts: Vec<Vec<u32>> = records
                .iter()
                .filter_map(|r| scorer.formatter().encode_prompt(task.system.as_deref(), r, settings.max_new_tokens).ok())
                .collect();
            let batch = batches.get(i);
            serde_json::json!({
                "task": task.name, "metric": format!("{:?}", task.metric), "records": records.len(),
                "eval_seconds": {"off": task_eval_s[i][0], "on": task_eval_s[i][1]},
                "train_step_seconds": {"off": task_train_s.get(i).map(|s| s[0]), "on": task_train_s.get(i).map(|s| s[1])},
                "train_tokens": batch.map_or(0, |b| b.tokens.mask.iter().filter(|&&m| m).count()),
                "train_padded_tokens": batch.map_or(0, |b| b.tokens.mask.len()),
                "prompt_tokens": prompts.iter().map(Vec::len).sum::<usize>(), "longest_prompt": prompts.iter().map(Vec::len).max().unwrap_or(0),
            })
        })
        .collect();
    let steps = settings.steps_per_task.unwrap_or(1) as f64;
    let n_tasks = suite.tasks.len() as f64;
    // The work itself, at equal efficiency: a token run forward costs 2·P FLOPs, a trained one
    // 4·P (the forward, and the backward to the activations; the frozen base gets no gradient),
    // P = the decoder's matrix parameters (the head runs on a few rows only, in both).
    let mut p = 0usize;
    lora::LoraTargets::for_each_linear(scorer.model(), &mut |name, l| {
        if name != "lm_head" {
            p += l.dims()[0] * l.dims()[1];
        }
    });
    let eval_tokens = tokens;
    let train_tokens: u64 = rows
        .iter()
        .map(|r| r["train_tokens"].as_u64().unwrap_or(0))
        .sum();
    let flop_ratio = (2.0 * p as f64 * eval_tokens as f64)
        / (4.0 * p as f64 * train_tokens as f64 / n_tasks * steps);
    // One stage trains `steps_per_task` steps; the mean step over the tasks stands for them.
    let stage_train = train_total.map(|t| t / n_tasks * steps);
    let examples: usize = rows
        .iter()
        .map(|r| r["records"].as_u64().unwrap_or(0) as usize)
        .sum();
    Ok(
        serde_json::json!({"suite": spec.name, "ab": args.ab, "eval_limit": settings.eval_limit, "probe_eval_limit": settings.probe_eval_limit,
        "eval_batch_size": settings.eval_batch_size, "max_new_tokens": settings.max_new_tokens, "batch_size": settings.batch_size,
        "steps_per_task": steps, "row_examples": examples,
        "eval_row_seconds": {"off": eval_total[0], "on": eval_total[1]}, "eval_speedup": eval_total[0] / eval_total[1],
        "generative_sets_seconds": {"off": gen_total[0], "on": gen_total[1]},
        "stage_train_seconds": {"off": stage_train[0], "on": stage_train[1]}, "train_speedup": train_total[0] / train_total[1],
        "eval_over_train": {"off": eval_total[0] / stage_train[0], "on": eval_total[1] / stage_train[1]},
        "decoder_matrix_params": p, "eval_tokens_run": eval_tokens, "stage_train_tokens": train_tokens as f64 / n_tasks * steps,
        "eval_over_train_flops": flop_ratio, "tasks": rows}),
    )
}

/// LoRA step time of AdamW, SAM and XSAM on the same batch. XSAM searches α on its first step
/// (21 extra forward passes) and then every 100 steps: the search step is timed on its own and
/// the per-step cost over one period is `(t_search + 99·t_step) / 100`.
fn sharpness_bench(
    args: &BenchArgs,
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<serde_json::Value> {
    use sharpness::{SamConfig, XsamConfig};
    let ad = device.clone().autodiff();
    let model = lora_model(args, path, &ad)?;
    let batch = random_batch(args, model.config.vocab_size, 2);
    let loss = |m: &backbone::CausalLm| backbone::score::next_token_loss(m, &batch);
    let mut slot = Some(model);
    let mut plain = AdamWConfig::new().init();
    let plain_s = timed(1, args.steps, || {
        let m = slot.take().expect("model");
        let l = loss(&m);
        let _ = l.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(l.backward(), &m);
        slot = Some(plain.step(1e-4, m, grads));
    });
    let mut sam = SamConfig::new()
        .with_rho(0.05)
        .init(AdamWConfig::new().init());
    let sam_s = timed(1, args.steps, || {
        let m = slot.take().expect("model");
        let (m, stats) = sam.step(1e-4, m, loss);
        let _ = stats.read();
        slot = Some(m);
    });
    let mut xsam = XsamConfig::new(SamConfig::new().with_rho(0.05))
        .with_alpha_period(100)
        .init(AdamWConfig::new().init());
    let search_s = timed(0, 1, || {
        let m = slot.take().expect("model");
        let (m, stats) = xsam.step(1e-4, m, loss);
        let _ = stats.read();
        slot = Some(m);
    });
    let xsam_s = timed(0, args.steps, || {
        let m = slot.take().expect("model");
        let (m, stats) = xsam.step(1e-4, m, loss);
        let _ = stats.read();
        slot = Some(m);
    });
    let period = (search_s + 99.0 * xsam_s) / 100.0;
    Ok(serde_json::json!({
        "plain_step_s": plain_s, "sam_step_s": sam_s, "xsam_search_step_s": search_s, "xsam_step_s": xsam_s,
        "xsam_per_step_over_period_s": period, "sam_over_plain": sam_s / plain_s, "xsam_over_sam": period / sam_s,
    }))
}

/// Loads the model on `device` with a rank-`args.rank` adapter on every projection (not the
/// head), ready for training when `device` is an autodiff device.
fn lora_model(
    args: &BenchArgs,
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<backbone::CausalLm> {
    let mut model = load_bench_model(args, path, device)?;
    let settings = LoraSettings {
        rank: args.rank,
        alpha: 2.0 * args.rank as f64,
        ..Default::default()
    };
    model.for_each_linear_mut(&mut |p, l| {
        if p != "lm_head" {
            l.add_adapter("bench", &settings, device)
        }
    });
    // The LoRA contract, as the engine trains (finetune::train): only the factors are trainable.
    let mut model = lora::freeze_base(model);
    lora::set_adapter_trainable(&mut model, "bench", true);
    Ok(model)
}

fn random_batch(args: &BenchArgs, vocab: usize, seed: u64) -> TokenBatch {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let seqs: Vec<Vec<u32>> = (0..args.batch)
        .map(|_| {
            (0..args.seq)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect()
        })
        .collect();
    TokenBatch::padded(&seqs, 0, false)
}

/// Seconds per forward and per LoRA step with the fused kernels off (`composed`) and on
/// (`fused`): one warm-up of each, then `args.steps` rounds of one composed and one fused
/// call, so that both see the same machine.
fn fused_ab_bench(
    args: &BenchArgs,
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<serde_json::Value> {
    let alternate = |f: &mut dyn FnMut()| -> [f64; 2] {
        let mut total = [0.0; 2];
        for round in 0..=args.steps {
            for (i, on) in [false, true].into_iter().enumerate() {
                backbone::fused::set_enabled(on);
                let t = Instant::now();
                f();
                if round > 0 {
                    total[i] += t.elapsed().as_secs_f64() / args.steps as f64;
                }
            }
        }
        backbone::fused::set_enabled(true);
        total
    };
    let model = lora_model(args, path, device)?;
    let batch = random_batch(args, model.config.vocab_size, 0);
    let forward = alternate(&mut || {
        let _ = model.forward(&batch, None).sum().into_scalar::<f32>();
    });
    drop(model);
    let ad = device.clone().autodiff();
    let mut slot = Some(lora_model(args, path, &ad)?);
    let mut optim = AdamWConfig::new().init();
    let step = alternate(&mut || {
        let m = slot.take().expect("model");
        let loss = backbone::score::next_token_loss(&m, &batch);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        slot = Some(optim.step(1e-4, m, grads));
    });
    let tokens = (args.batch * args.seq) as f64;
    Ok(serde_json::json!({
        "forward_s": {"composed": forward[0], "fused": forward[1]},
        "lora_step_s": {"composed": step[0], "fused": step[1]},
        "forward_tokens_per_s": {"composed": tokens / forward[0], "fused": tokens / forward[1]},
        "lora_step_tokens_per_s": {"composed": tokens / step[0], "fused": tokens / step[1]},
        "forward_speedup": forward[0] / forward[1], "lora_step_speedup": step[0] / step[1],
    }))
}

/// Writes `results/bench/<name>-<unix time>.json` with the command, config and provenance.
fn write_record(
    args: &BenchArgs,
    path: &std::path::Path,
    name: &str,
    result: serde_json::Value,
) -> anyhow::Result<()> {
    let record = serde_json::json!({"command": std::env::args().collect::<Vec<_>>(), "provenance": crate::provenance(),
        "config": {"model": path.display().to_string(), "batch": args.batch, "seq": args.seq, "steps": args.steps, "rank": args.rank,
            "random_weights": args.random_weights, "torch_device": args.torch_device},
        "result": result});
    let dir = PathBuf::from("results/bench");
    std::fs::create_dir_all(&dir)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let file = dir.join(format!("{name}-{secs}.json"));
    backbone::weights::write_atomic(&file, serde_json::to_string_pretty(&record)?.as_bytes())?;
    println!("wrote {}", file.display());
    Ok(())
}

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let path = args
        .sel
        .model
        .clone()
        .unwrap_or_else(crate::model::default_model_path);
    let device = backbone::select_device(args.sel.device.as_deref()).map_err(anyhow::Error::msg)?;
    if args.sharpness {
        let r = sharpness_bench(&args, &path, &device)?;
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "model {} | LoRA rank {} | batch {} x {} tokens | step seconds",
            path.display(),
            args.rank,
            args.batch,
            args.seq
        );
        println!(
            "AdamW {:.2}  SAM {:.2}  XSAM {:.2} (search step {:.2}; per step over a 100-step period {:.2})",
            f("plain_step_s"),
            f("sam_step_s"),
            f("xsam_step_s"),
            f("xsam_search_step_s"),
            f("xsam_per_step_over_period_s")
        );
        println!(
            "SAM / AdamW = {:.2}   XSAM / SAM = {:.3}",
            f("sam_over_plain"),
            f("xsam_over_sam")
        );
        return write_record(&args, &path, "sharpness-bench", r);
    }
    if args.fused_ab {
        let r = fused_ab_bench(&args, &path, &device)?;
        println!(
            "model {} | batch {} x {} tokens | LoRA rank {} | tokens/s, kernels composed vs fused, alternating",
            path.display(),
            args.batch,
            args.seq,
            args.rank
        );
        for what in ["forward", "lora_step"] {
            let tps = &r[format!("{what}_tokens_per_s")];
            println!(
                "{what:<10} composed {:>7.1}  fused {:>7.1}  speed-up {:.3}",
                tps["composed"].as_f64().unwrap_or(f64::NAN),
                tps["fused"].as_f64().unwrap_or(f64::NAN),
                r[format!("{what}_speedup")].as_f64().unwrap_or(f64::NAN)
            );
        }
        return write_record(&args, &path, "fused-ab-bench", r);
    }
    if let Some(suite) = &args.suite {
        let r = suite_bench(&args, suite, &path, &device)?;
        println!(
            "model {} | suite {} | one stage, mean of {} after a warm-up | {} off / on, seconds",
            path.display(),
            suite.display(),
            args.steps,
            args.ab
        );
        println!(
            "{:<22} {:>4} {:>13} {:>13} {:>14} {:>10} {:>7}",
            "task", "recs", "eval", "train step", "train tok/pad", "prompt tok", "longest"
        );
        for t in r["tasks"].as_array().into_iter().flatten() {
            let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
            let pair = |k: &str| match (t[k]["off"].as_f64(), t[k]["on"].as_f64()) {
                (Some(a), Some(b)) => format!("{a:.2} / {b:.2}"),
                _ => "together".to_string(),
            };
            let train = if t["train_padded_tokens"].as_u64() == Some(0) {
                "-".to_string()
            } else {
                pair("train_step_seconds")
            };
            println!(
                "{:<22} {:>4} {:>13} {:>13} {:>14} {:>10} {:>7}",
                t["task"].as_str().unwrap_or(""),
                f("records"),
                pair("eval_seconds"),
                train,
                format!("{} / {}", t["train_tokens"], t["train_padded_tokens"]),
                f("prompt_tokens"),
                f("longest_prompt")
            );
        }
        println!(
            "generative sets together: {:.1} / {:.1} s",
            r["generative_sets_seconds"]["off"]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["generative_sets_seconds"]["on"]
                .as_f64()
                .unwrap_or(f64::NAN)
        );
        let g = |k: &str, v: &str| r[k][v].as_f64().unwrap_or(f64::NAN);
        println!(
            "evaluation row ({} examples): {:.1} / {:.1} s ({:.2}x)",
            r["row_examples"],
            g("eval_row_seconds", "off"),
            g("eval_row_seconds", "on"),
            r["eval_speedup"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "training of a stage ({} steps): {:.1} / {:.1} s ({:.2}x)",
            r["steps_per_task"],
            g("stage_train_seconds", "off"),
            g("stage_train_seconds", "on"),
            r["train_speedup"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "evaluation / training: {:.2} / {:.2} in time; {:.2} in FLOPs (2·P per token run, {} tokens; 4·P per trained token, {:.0})",
            g("eval_over_train", "off"),
            g("eval_over_train", "on"),
            r["eval_over_train_flops"].as_f64().unwrap_or(f64::NAN),
            r["eval_tokens_run"],
            r["stage_train_tokens"].as_f64().unwrap_or(f64::NAN)
        );
        return write_record(&args, &path, "suite-bench", r);
    }
    if args.eval {
        let r = eval_bench(&args, &path, &device)?;
        println!(
            "model {} | {} records, {}-token prompts | evaluation examples/s",
            path.display(),
            args.batch,
            args.seq
        );
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "multiple choice (4 options): records batched {:.2}, record by record (shared prompt) {:.2}, one sequence per option {:.2}",
            f("mc_examples_per_s_records_batched"),
            f("mc_examples_per_s_shared_prompt"),
            f("mc_examples_per_s_one_sequence_per_option")
        );
        println!(
            "  ratios: batched / record by record {:.2}, record by record / one sequence per option {:.2}",
            f("mc_examples_per_s_records_batched") / f("mc_examples_per_s_shared_prompt"),
            f("mc_examples_per_s_shared_prompt") / f("mc_examples_per_s_one_sequence_per_option")
        );
        println!(
            "greedy generation (16 tokens): batched {:.2}, one by one {:.2}, ratio {:.2}",
            f("gen16_examples_per_s_batched"),
            f("gen16_examples_per_s_one_by_one"),
            f("gen16_examples_per_s_batched") / f("gen16_examples_per_s_one_by_one")
        );
        return write_record(&args, &path, "eval-bench", r);
    }
    let tokens = (args.batch * args.seq) as f64;

    // Forward (no autodiff).
    let lm = load_bench_model(&args, &path, &device)?;
    let batch = random_batch(&args, lm.config.vocab_size, 0);
    let forward_s = timed(1, args.steps, || {
        let _ = lm.forward(&batch, None).sum().into_scalar::<f32>();
    });
    drop(lm);

    // LoRA training step: forward, backward, AdamW on the adapter factors only.
    let ad = device.clone().autodiff();
    let mut model = lora_model(&args, &path, &ad)?;
    // A LoRA step costs about 4 · params · tokens FLOPs: forward 2·P·T, backward 2·P·T for the
    // activations' gradients (the frozen weights get none; the adapters' share is tiny).
    let params: usize = {
        let mut n = 0;
        model.for_each_linear_mut(&mut |_, l| n += l.weight.shape().num_elements());
        if model.lm_head.is_none() {
            n += model.config.vocab_size * model.config.hidden_size; // the tied output head
        }
        n
    };
    let mut optim = AdamWConfig::new().init();
    let mut slot = Some(model);
    let step_s = timed(1, args.steps, || {
        let m = slot.take().expect("model");
        let loss = backbone::score::next_token_loss(&m, &batch);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        slot = Some(optim.step(1e-4, m, grads));
    });
    drop(slot);
    let sgemm = sgemm_flops(&device, 5);
    let step_flops = 4.0 * params as f64 * tokens;
    let rust = serde_json::json!({
        "impl": "burn",
        "matmul_params": params, "lora_step_flops": step_flops, "lora_step_flop_per_s": step_flops / step_s,
        "sgemm_sizes": SGEMM_SIZES, "sgemm_flop_per_s": sgemm,
        "device": format!("{device:?}"),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "forward_s": forward_s, "forward_tokens_per_s": tokens / forward_s,
        "lora_step_s": step_s, "lora_step_tokens_per_s": tokens / step_s,
        "peak_rss_mib": peak_rss_mib(),
    });

    let torch = if args.no_torch {
        serde_json::Value::Null
    } else {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_peft_bench.py");
        let out = std::process::Command::new(&args.python)
            .arg(&script)
            .args(["--model", &path.display().to_string()])
            .args(["--batch", &args.batch.to_string(), "--seq", &args.seq.to_string()])
            .args(["--steps", &args.steps.to_string(), "--threads", &args.threads.to_string()])
            .args(["--rank", &args.rank.to_string()])
            .args(["--sgemm", &SGEMM_SIZES.map(|[m, k, n]| format!("{m}x{k}x{n}")).join(",")])
            .args(["--device", &args.torch_device])
            .args(args.random_weights.then_some("--random-weights"))
            .output()
            .with_context(|| format!("running {} (torch, transformers and peft are needed for the reference; --python picks the interpreter)", args.python))?;
        if !out.status.success() {
            anyhow::bail!(
                "{} failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        serde_json::from_str(&line)
            .with_context(|| format!("parsing the reference output {line:?}"))?
    };

    println!(
        "model {} | batch {} x {} tokens | LoRA rank {}",
        path.display(),
        args.batch,
        args.seq,
        args.rank
    );
    println!(
        "{:<28}{:>14}{:>16}{:>10}",
        "", "burn", "pytorch+peft", "ratio"
    );
    for (label, key) in [
        ("forward tokens/s", "forward_tokens_per_s"),
        ("LoRA step tokens/s", "lora_step_tokens_per_s"),
        ("peak RSS MiB", "peak_rss_mib"),
    ] {
        let r = rust[key].as_f64().unwrap_or(f64::NAN);
        let t = torch.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        println!("{label:<28}{r:>14.1}{t:>16.1}{:>10.3}", r / t);
    }
    // The machine's sgemm: the best either library reaches on the large square product.
    let torch_sgemm: Vec<f64> = torch["sgemm_flop_per_s"]
        .as_array()
        .map_or(vec![], |v| v.iter().filter_map(|x| x.as_f64()).collect());
    for (i, [m, k, n]) in SGEMM_SIZES.iter().enumerate() {
        let t = torch_sgemm.get(i).copied().unwrap_or(f64::NAN);
        println!(
            "{:<28}{:>14.1}{:>16.1}{:>10.3}",
            format!("sgemm {m}x{k}x{n} GFLOP/s"),
            sgemm[i] / 1e9,
            t / 1e9,
            sgemm[i] / t
        );
    }
    let machine = sgemm[0].max(torch_sgemm.first().copied().unwrap_or(0.0));
    let torch_step = torch["lora_step_tokens_per_s"]
        .as_f64()
        .map(|tps| step_flops / tokens * tps);
    println!(
        "LoRA step {:.1} GFLOP/s = {:.1}% of the machine's sgemm ({:.1} GFLOP/s; 4 x {:.1} M params x {} tokens per step); PyTorch: {}",
        step_flops / step_s / 1e9,
        100.0 * step_flops / step_s / machine,
        machine / 1e9,
        params as f64 / 1e6,
        tokens,
        torch_step.map_or("-".into(), |f| format!(
            "{:.1} GFLOP/s = {:.1}%",
            f / 1e9,
            100.0 * f / machine
        ))
    );
    let record = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "config": {"model": path.display().to_string(), "batch": args.batch, "seq": args.seq,
                   "steps": args.steps, "rank": args.rank, "threads": args.threads},
        "provenance": crate::provenance(),
        "burn": rust, "pytorch": torch, "machine_sgemm_flop_per_s": machine,
        "lora_step_fraction_of_sgemm": step_flops / step_s / machine,
    });
    let dir = PathBuf::from("results/bench");
    std::fs::create_dir_all(&dir)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let file = dir.join(format!("bench-{secs}.json"));
    backbone::weights::write_atomic(&file, serde_json::to_string_pretty(&record)?.as_bytes())?;
    println!("wrote {}", file.display());
    Ok(())
}
