//! Training behaviour on the tiny Qwen2 fixture (CPU): the loss falls under LoRA and full
//! fine-tuning, only adapters train, accumulation equals a bigger batch, and a saved optimizer
//! state resumes exactly.

mod common;

use backbone::CausalLm;
use burn::tensor::Device;
use common::*;
use finetune::{LrSchedule, ObjectiveConfig, Reference, SftBatch, TrainConfig, TrainMode, Trainer};
use lora::{LoraConfig, LoraSettings, Preset};

fn examples() -> SftBatch {
    // Four prompt → answer pairs over the 128-token vocabulary (ids ≥ 3; 0 pads).
    let pairs = vec![
        (vec![5, 9, 14, 3], vec![40, 41, 42, 43]),
        (vec![6, 10, 15], vec![50, 51, 52]),
        (vec![7, 11, 16, 20, 21], vec![60, 61, 62, 63, 64]),
        (vec![8, 12], vec![70, 71, 72]),
    ];
    SftBatch::from_pairs(&pairs, 0)
}

fn lora_model(device: &Device) -> CausalLm {
    let mut m = tiny(device);
    let cfg = LoraConfig::new(
        LoraSettings {
            rank: 4,
            alpha: 8.0,
            ..Default::default()
        },
        Preset::All,
    );
    assert_eq!(lora::add_adapter(&mut m, "t", &cfg, device), 14);
    finetune::prepare_model(
        m,
        &TrainMode::Lora {
            adapter: "t".into(),
        },
    )
    .unwrap()
}

fn sft_value(model: &CausalLm, batch: &SftBatch) -> f32 {
    finetune::sft_loss(model, batch).mean.into_scalar()
}

#[test]
fn lora_fine_tuning_smoke_loss_falls_and_only_adapters_train() {
    let device = Device::flex().autodiff();
    let mut model = lora_model(&device);
    let adapter_params = lora::adapter_num_params(&model, "t");
    assert_eq!(finetune::num_trainable_params(&model), adapter_params);
    let base_before: Vec<f32> = model.model.layers[0]
        .self_attn
        .q_proj
        .weight
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();

    let batch = examples();
    let obj = ObjectiveConfig {
        kl_weight: 0.01,
        ..Default::default()
    };
    let mut trainer = Trainer::new(TrainConfig {
        lr: 1e-2,
        ..Default::default()
    });
    let first = sft_value(&model, &batch);
    for _ in 0..15 {
        let parts = finetune::objective(&mut model, Reference::AdaptersOff, &batch, None, &obj);
        let (m, info) = trainer.backward_step(model, parts.total);
        model = m;
        assert!(info.is_some());
    }
    let last = sft_value(&model, &batch);
    println!("LoRA smoke: SFT loss {first:.4} → {last:.4} in 15 steps");
    assert!(last < 0.5 * first, "{first} → {last}");
    let base_after: Vec<f32> = model.model.layers[0]
        .self_attn
        .q_proj
        .weight
        .val()
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(base_before, base_after, "the base weight is frozen");
    // Switching the adapter off gives the untouched base model back.
    lora::set_adapters_enabled(&mut model, false);
    let base_loss = sft_value(&model, &batch);
    assert!((base_loss - first).abs() < 1e-5, "{base_loss} vs {first}");
}

#[test]
fn full_fine_tuning_trains_every_parameter_and_loss_falls() {
    let device = Device::flex().autodiff();
    let model = tiny(&device);
    let total = burn::module::Module::num_params(&model);
    let mut model = finetune::prepare_model(model, &TrainMode::Full).unwrap();
    assert_eq!(finetune::num_trainable_params(&model), total);
    let reference = burn::module::Module::valid(&model);
    let batch = examples();
    let obj = ObjectiveConfig {
        kl_weight: 0.01,
        ..Default::default()
    };
    let mut trainer = Trainer::new(TrainConfig {
        lr: 3e-3,
        ..Default::default()
    });
    let first = sft_value(&model, &batch);
    for _ in 0..8 {
        let parts =
            finetune::objective(&mut model, Reference::Model(&reference), &batch, None, &obj);
        model = trainer.backward_step(model, parts.total).0;
    }
    let last = sft_value(&model, &batch);
    println!("full FT smoke: SFT loss {first:.4} → {last:.4} in 8 steps");
    assert!(last < 0.7 * first, "{first} → {last}");
}

fn adapter_values(model: &CausalLm) -> Vec<f32> {
    let mut out = Vec::new();
    lora::LoraTargets::for_each_linear(model, &mut |_, l| {
        if let Some(a) = l.adapter("t") {
            out.extend(a.a.val().into_data().try_to_vec::<f32>().unwrap());
            out.extend(a.b.val().into_data().try_to_vec::<f32>().unwrap());
        }
    });
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn accumulating_two_halves_equals_one_step_on_the_whole_batch() {
    let device = Device::flex().autodiff();
    let obj = ObjectiveConfig::default();
    // Two micro-batches with the same number of answer tokens: the mean of their means is
    // the token mean of the union.
    let half1 = SftBatch::from_pairs(&[(vec![5, 9], vec![40, 41, 42])], 0);
    let half2 = SftBatch::from_pairs(&[(vec![6, 10], vec![50, 51, 52])], 0);
    let whole = SftBatch::from_pairs(
        &[
            (vec![5, 9], vec![40, 41, 42]),
            (vec![6, 10], vec![50, 51, 52]),
        ],
        0,
    );
    let cfg = TrainConfig {
        lr: 1e-2,
        max_grad_norm: None,
        ..Default::default()
    };

    // Two steps so that B ≠ 0 and A gets gradients too.
    let mut one = lora_model(&device);
    let mut acc = one.clone();
    let mut t1 = Trainer::new(cfg.clone());
    let mut t2 = Trainer::new(TrainConfig {
        grad_accum_steps: 2,
        ..cfg
    });
    for _ in 0..2 {
        let l = finetune::objective(&mut one, Reference::AdaptersOff, &whole, None, &obj).total;
        one = t1.backward_step(one, l).0;
        let l = finetune::objective(&mut acc, Reference::AdaptersOff, &half1, None, &obj).total;
        let (m, info) = t2.backward_step(acc, l);
        assert!(info.is_none(), "first micro-batch only accumulates");
        let l = finetune::objective(
            &mut { m.clone() },
            Reference::AdaptersOff,
            &half2,
            None,
            &obj,
        )
        .total;
        let (m, info) = t2.backward_step(m, l);
        assert!(info.is_some());
        acc = m;
    }
    let d = max_abs_diff(&adapter_values(&one), &adapter_values(&acc));
    assert!(d < 1e-5, "{d}");
}

#[test]
fn clipping_bounds_the_global_norm() {
    let device = Device::flex().autodiff();
    let mut model = lora_model(&device);
    let batch = examples();
    let mut trainer = Trainer::new(TrainConfig {
        lr: 1e-3,
        max_grad_norm: Some(1e-3),
        ..Default::default()
    });
    let l = finetune::objective(
        &mut model,
        Reference::AdaptersOff,
        &batch,
        None,
        &ObjectiveConfig::default(),
    )
    .total;
    let (_, info) = trainer.backward_step(model, l);
    let info = info.unwrap();
    assert!(
        info.grad_norm > 1e-3,
        "the test needs a gradient above the threshold: {}",
        info.grad_norm
    );
}

#[test]
fn saved_optimizer_state_and_adapter_resume_exactly() {
    let device = Device::flex().autodiff();
    let batch = examples();
    let obj = ObjectiveConfig::default();
    let cfg = TrainConfig {
        lr: 5e-3,
        schedule: LrSchedule::WarmupCosine {
            warmup_steps: 2,
            total_steps: 6,
            min_ratio: 0.1,
        },
        ..Default::default()
    };
    let step = |model: CausalLm, trainer: &mut Trainer| {
        let mut model = model;
        let l = finetune::objective(&mut model, Reference::AdaptersOff, &batch, None, &obj).total;
        trainer.backward_step(model, l).0
    };
    let mut model = lora_model(&device);
    let mut trainer = Trainer::new(cfg.clone());
    for _ in 0..3 {
        model = step(model, &mut trainer);
    }
    let dir = tempfile::tempdir().unwrap();
    lora::save_peft(&model, "t", &dir.path().join("adapter"), None).unwrap();
    trainer.save(&dir.path().join("trainer")).unwrap();
    let continued = step(model, &mut trainer);

    // A new process: base model, adapter from the PEFT files, optimizer from its record.
    let mut fresh = tiny(&device);
    lora::load_peft(&mut fresh, &dir.path().join("adapter"), "t", &device).unwrap();
    let fresh = finetune::prepare_model(
        fresh,
        &TrainMode::Lora {
            adapter: "t".into(),
        },
    )
    .unwrap();
    let mut resumed_trainer = Trainer::new(cfg).load(&dir.path().join("trainer")).unwrap();
    assert_eq!(resumed_trainer.step_count(), 3);
    let resumed = step(fresh, &mut resumed_trainer);
    let d = max_abs_diff(&adapter_values(&continued), &adapter_values(&resumed));
    assert!(d < 1e-6, "resumed step differs by {d}");
    // Without the optimizer state the step differs (AdamW's moments matter).
    let mut fresh = tiny(&device);
    lora::load_peft(&mut fresh, &dir.path().join("adapter"), "t", &device).unwrap();
    let fresh = finetune::prepare_model(
        fresh,
        &TrainMode::Lora {
            adapter: "t".into(),
        },
    )
    .unwrap();
    let mut cold = Trainer::new(TrainConfig {
        lr: 5e-3,
        ..Default::default()
    });
    let cold = step(fresh, &mut cold);
    assert!(max_abs_diff(&adapter_values(&continued), &adapter_values(&cold)) > 1e-5);
}
