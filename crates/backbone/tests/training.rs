//! A few LoRA fine-tuning steps on the tiny Llama fixture: the loss falls on the CPU (Flex) and
//! on WGPU. The WGPU run needs a Vulkan driver and is enabled with `CONTINUAL_TEST_WGPU=1`, which
//! CI sets after `scripts/lavapipe.py` (Mesa 26's software Vulkan; Debian 12's crashes on Burn's
//! fused reduce kernel). The first step compiles shaders (about 100 s on lavapipe).
//! `CONTINUAL_TEST_WGPU_DEVICE` picks `vulkan` (default: SPIR-V) or `wgpu` (WGSL).

use std::path::Path;

use backbone::{LoadedModel, TokenBatch};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use lora::{LoraSettings, LoraTargets};

fn lora_losses(device: &Device, steps: usize) -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_tied");
    let mut model = LoadedModel::load(&dir, device).unwrap().model;
    let settings = LoraSettings {
        rank: 4,
        alpha: 8.0,
        ..Default::default()
    };
    model.for_each_linear_mut(&mut |_, l| l.add_adapter("task", &settings, device));
    // Two short sequences with a repeating pattern the adapters can learn.
    let seqs = vec![
        vec![5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8],
        vec![9, 10, 11, 9, 10, 11, 9, 10, 11],
    ];
    let batch = TokenBatch::padded(&seqs, 0, false);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = backbone::score::next_token_loss(&model, &batch);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    losses
}

#[test]
fn lora_steps_reduce_the_loss_on_cpu() {
    let losses = lora_losses(&Device::flex().autodiff(), 8);
    println!("CPU LoRA losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[7] < 0.9 * losses[0], "loss did not fall: {losses:?}");
}

#[test]
fn lora_steps_reduce_the_loss_on_wgpu() {
    if std::env::var("CONTINUAL_TEST_WGPU").as_deref() != Ok("1") {
        println!(
            "SKIPPED: set CONTINUAL_TEST_WGPU=1 (and a Vulkan driver) to run training steps on WGPU"
        );
        return;
    }
    let device = backbone::select_device(Some(
        &std::env::var("CONTINUAL_TEST_WGPU_DEVICE").unwrap_or_else(|_| "vulkan".into()),
    ))
    .unwrap()
    .autodiff();
    let losses = lora_losses(&device, 2);
    println!("WGPU LoRA losses: {losses:?}");
    let cpu = lora_losses(&Device::flex().autodiff(), 1);
    assert!(
        (losses[0] - cpu[0]).abs() < 1e-3,
        "first loss on WGPU {} vs CPU {}",
        losses[0],
        cpu[0]
    );
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(
        losses[1] < losses[0],
        "loss did not fall on WGPU: {losses:?}"
    );
}
