//! A few SAM and XSAM steps on WGPU (Vulkan), compared with the same steps on the CPU.
//!
//! Runs when `CONTINUAL_TEST_WGPU=1` (CI sets it after installing Mesa's software Vulkan);
//! otherwise it prints why it skipped.

#![cfg(feature = "wgpu")]

mod common;

use burn::optim::SgdConfig;
use burn::tensor::Device;
use common::{Mlp, batches, fixture};
use sharpness::{SamConfig, SharpnessAware, XsamConfig};

fn run(device: &Device, mut optim: SharpnessAware, steps: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
    let fixture = fixture();
    let trajectory = fixture["runs"]["plain_sgd"]["trajectory"]
        .as_array()
        .unwrap();
    let mut model = Mlp::from_json(&trajectory[0], [4, 8, 3], device);
    let batches = batches(&fixture, device);
    let mut alphas = Vec::new();
    for t in 0..steps {
        let (x, y) = &batches[t % batches.len()];
        let stats;
        (model, stats) = optim.step(0.05, model, |m: &Mlp| m.loss(x, y));
        alphas.extend(stats.alpha);
    }
    (model.flat(), alphas)
}

#[test]
fn sam_and_xsam_steps_on_wgpu_match_the_cpu() {
    if std::env::var("CONTINUAL_TEST_WGPU").as_deref() != Ok("1") {
        println!("skipped: set CONTINUAL_TEST_WGPU=1 (with a Vulkan driver) to run the WGPU test");
        return;
    }
    let gpu = Device::vulkan(Default::default()).autodiff();
    let cpu = Device::flex().autodiff();
    let sam = SamConfig::new().with_rho(0.3).with_ascent_steps(2);
    let xsam = XsamConfig::new(sam.clone()).with_alpha_period(2);
    for (name, make) in [
        (
            "sam k=2",
            Box::new(|| sam.init(SgdConfig::new().init())) as Box<dyn Fn() -> SharpnessAware>,
        ),
        ("xsam k=2", Box::new(|| xsam.init(SgdConfig::new().init()))),
    ] {
        let (on_gpu, alphas_gpu) = run(&gpu, make(), 4);
        let (on_cpu, alphas_cpu) = run(&cpu, make(), 4);
        assert_eq!(alphas_gpu, alphas_cpu, "{name}: α*");
        let max_error = on_gpu
            .iter()
            .flatten()
            .zip(on_cpu.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{name}: max |θ_wgpu − θ_cpu| after 4 steps = {max_error:.3e}");
        assert!(max_error < 1e-4, "{name}: {max_error}");
    }
}
