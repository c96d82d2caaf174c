//! Trajectory parity with the torch reference (`tests/fixtures/make_trajectories.py`): plain SGD
//! and AdamW, SAM k = 1 and k = 2, XSAM with the dynamic α (and a fixed α = 0), 20 steps each on
//! a tiny MLP; every parameter at every step within 1e-5 of torch's.

mod common;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use common::{Mlp, NAMES, batches, fixture, floats};
use serde_json::Value;
use sharpness::{SamConfig, XsamConfig};

const TOLERANCE: f32 = 1e-5;

fn base_optimizer(base: &Value) -> ModuleOptimizer {
    let f = |key: &str| base[key].as_f64().unwrap();
    match base["kind"].as_str().unwrap() {
        "sgd" => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(f("momentum"))
                    .with_dampening(0.0),
            ))
            .with_weight_decay(Some(WeightDecayConfig::new(f("weight_decay") as f32)))
            .init(),
        "adamw" => AdamWConfig::new()
            .with_beta_1(f("beta_1") as f32)
            .with_beta_2(f("beta_2") as f32)
            .with_epsilon(f("epsilon") as f32)
            .with_weight_decay(f("weight_decay") as f32)
            .init(),
        other => panic!("unknown base optimizer {other}"),
    }
}

struct RunResult {
    max_error: f32,
    alpha_mismatches: usize,
}

fn replay(fixture: &Value, name: &str) -> RunResult {
    let run = &fixture["runs"][name];
    let config = &run["config"];
    let device = Device::flex().autodiff();
    let dims: Vec<usize> = serde_json::from_value(fixture["dims"].clone()).unwrap();
    let dims = [dims[0], dims[1], dims[2]];
    let trajectory = run["trajectory"].as_array().unwrap();
    let logs = run["log"].as_array().unwrap();
    let batches = batches(fixture, &device);
    let lr = config["base"]["lr"].as_f64().unwrap();
    let mut model = Mlp::from_json(&trajectory[0], dims, &device);
    let base = base_optimizer(&config["base"]);
    let method = config["method"].as_str().unwrap();
    let f = |key: &str| config[key].as_f64().unwrap();
    let mut plain = base.clone();
    let mut wrapped = match method {
        "plain" => None,
        "sam" => Some(
            SamConfig::new()
                .with_rho(f("rho"))
                .with_ascent_steps(f("k") as usize)
                .init(base),
        ),
        "xsam" => {
            let sam = SamConfig::new()
                .with_rho(f("rho"))
                .with_ascent_steps(f("k") as usize);
            let fixed = (!config["dynamic"].as_bool().unwrap()).then(|| f("alpha"));
            Some(
                XsamConfig::new(sam)
                    .with_rho_max(Some(f("rho_max")))
                    .with_alpha_period(f("alpha_period") as usize)
                    .with_alpha_step(f("alpha_step"))
                    .with_alpha_max(f("alpha_max"))
                    .with_fixed_alpha(fixed)
                    .init(base),
            )
        }
        other => panic!("unknown method {other}"),
    };

    let mut max_error = 0.0f32;
    let mut alpha_mismatches = 0;
    for (t, expected) in trajectory.iter().enumerate().skip(1) {
        let (x, y) = &batches[(t - 1) % batches.len()];
        let loss_fn = |m: &Mlp| m.loss(x, y);
        model = match wrapped.as_mut() {
            None => {
                let grads = GradientsParams::from_grads(loss_fn(&model).backward(), &model);
                plain.step(lr, model, grads)
            }
            Some(optim) => {
                let (model, stats) = optim.step(lr, model, loss_fn);
                let log = stats.read();
                let reference = &logs[t - 1];
                if let Some(alpha) = reference["alpha"].as_f64()
                    && (log.alpha.unwrap() - alpha).abs() > 1e-9
                {
                    alpha_mismatches += 1;
                }
                let g = reference["grad_norm"].as_f64().unwrap();
                assert!(
                    (log.grad_norm - g).abs() < 1e-4 * g.max(1.0),
                    "{name} step {t}: ‖g_k‖"
                );
                if let Some(psi) = reference["psi"].as_f64() {
                    assert!((log.psi.unwrap() - psi).abs() < 1e-3, "{name} step {t}: ψ");
                }
                model
            }
        };
        for (got, key) in model.flat().iter().zip(NAMES) {
            let want = floats(&expected[key]);
            for (a, b) in got.iter().zip(&want) {
                max_error = max_error.max((a - b).abs());
            }
        }
    }
    RunResult {
        max_error,
        alpha_mismatches,
    }
}

#[test]
fn every_reference_trajectory_is_reproduced_within_1e_5() {
    let fixture = fixture();
    let mut failures = Vec::new();
    for name in fixture["runs"].as_object().unwrap().keys() {
        let result = replay(&fixture, name);
        println!(
            "{name:28} max |Δθ| over 20 steps = {:.3e}, α* mismatches = {}",
            result.max_error, result.alpha_mismatches
        );
        if result.max_error > TOLERANCE || result.alpha_mismatches > 0 {
            failures.push(name.clone());
        }
    }
    assert!(failures.is_empty(), "runs off the reference: {failures:?}");
}
