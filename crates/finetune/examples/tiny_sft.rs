//! A complete LoRA fine-tuning loop on the tiny Qwen2 test fixture, with the KL penalty to the
//! adapter-free model and next-token prediction on a "corpus" batch, warm-up + cosine schedule,
//! gradient accumulation, and per-sample losses as a replay method would read them.
//!
//! ```sh
//! cargo run -p finetune --example tiny_sft
//! ```

use std::path::Path;

use backbone::{LoadedModel, TokenBatch};
use burn::tensor::Device;
use finetune::{LrSchedule, ObjectiveConfig, Reference, SftBatch, TrainConfig, TrainMode, Trainer};
use lora::{LoraConfig, LoraSettings, Preset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex().autodiff();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lora/tests/fixtures/tiny_qwen2");
    let mut model = LoadedModel::load(&dir, &device)?.model;
    let cfg = LoraConfig::new(
        LoraSettings {
            rank: 8,
            alpha: 16.0,
            ..Default::default()
        },
        Preset::All,
    );
    lora::add_adapter(&mut model, "task1", &cfg, &device);
    let mut model = finetune::prepare_model(
        model,
        &TrainMode::Lora {
            adapter: "task1".into(),
        },
    )?;
    println!(
        "trainable values: {}",
        finetune::num_trainable_params(&model)
    );

    let batches = [
        SftBatch::from_pairs(
            &[
                (vec![5, 9, 14], vec![40, 41, 42]),
                (vec![6, 10], vec![50, 51, 52, 53]),
            ],
            0,
        ),
        SftBatch::from_pairs(
            &[
                (vec![7, 11, 16, 20], vec![60, 61]),
                (vec![8, 12], vec![70, 71, 72]),
            ],
            0,
        ),
    ];
    let corpus = TokenBatch::padded(&[vec![3, 4, 5, 6, 7, 8, 9], vec![20, 21, 22, 23]], 0, false);
    let objective = ObjectiveConfig {
        kl_weight: 0.01,
        ntp_weight: 0.1,
        ..Default::default()
    };
    let mut trainer = Trainer::new(TrainConfig {
        lr: 5e-3,
        schedule: LrSchedule::WarmupCosine {
            warmup_steps: 2,
            total_steps: 20,
            min_ratio: 0.1,
        },
        grad_accum_steps: 2,
        ..Default::default()
    });
    for epoch in 0..20 {
        for (i, batch) in batches.iter().enumerate() {
            // One corpus batch every other micro-batch (METHODS.md §5 interleaves every 4 steps).
            let corpus = (i == 0).then_some(&corpus);
            let parts = finetune::objective(
                &mut model,
                Reference::AdaptersOff,
                batch,
                corpus,
                &objective,
            );
            let per_sample: Vec<f32> = parts
                .sft
                .per_sample
                .clone()
                .into_data()
                .try_to_vec()
                .unwrap();
            let kl: f32 = parts.kl.clone().map_or(0.0, |k| k.into_scalar());
            let (m, info) = trainer.backward_step(model, parts.total);
            model = m;
            if let Some(info) = info.filter(|_| epoch % 5 == 0) {
                println!(
                    "step {:>2}: lr {:.2e}, |g| {:.3}, per-sample SFT {:?}, KL {:.4}",
                    info.step, info.lr, info.grad_norm, per_sample, kl
                );
            }
        }
    }
    let out = std::env::temp_dir().join("finetune-example-task1");
    lora::save_peft(&model, "task1", &out, None)?;
    trainer.save(&out.join("trainer"))?;
    println!("adapter and optimizer state in {}", out.display());
    Ok(())
}
