//! Step-time benchmark: a plain AdamW step vs SAM (k = 1) vs XSAM (k = 1, alpha_period = 100).
//!
//! ```text
//! cargo run -p sharpness --features wgpu --example bench_step -- [--steps N] [--width W] [--batch B]
//! ```
//!
//! The model is a 3-layer tanh MLP (`W → 4W → 4W → W`, mean-squared loss) on the CPU (Flex)
//! backend; the SmolLM2-135M + LoRA run of issue 4 item 5 is not wired yet (see
//! `docs/sharpness.md`). Every step ends by reading the loss back, as a training loop does.
//!
//! XSAM searches α on its first step (21 extra forward passes) and then every 100 steps. The
//! search step is timed on its own, and the per-step cost over one period is reported as
//! `(t_search_step + 99·t_step) / 100`.

use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Tensor};
use sharpness::{SamConfig, SharpnessAware, XsamConfig};

#[derive(Module, Debug)]
struct Mlp {
    w1: Param<Tensor<2>>,
    w2: Param<Tensor<2>>,
    w3: Param<Tensor<2>>,
}

impl Mlp {
    fn new(width: usize, device: &Device) -> Self {
        let init = |i: usize, o: usize| {
            let std = 1.0 / (i as f64).sqrt();
            Param::from_tensor(Tensor::<2>::random(
                [i, o],
                Distribution::Normal(0.0, std),
                device,
            ))
        };
        Self {
            w1: init(width, 4 * width),
            w2: init(4 * width, 4 * width),
            w3: init(4 * width, width),
        }
    }

    fn loss(&self, x: &Tensor<2>, y: &Tensor<2>) -> Tensor<1> {
        let h = x.clone().matmul(self.w1.val()).tanh();
        let h = h.matmul(self.w2.val()).tanh();
        (h.matmul(self.w3.val()) - y.clone()).square().mean()
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() {
    let (mut steps, mut width, mut batch) = (10usize, 128usize, 64usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().and_then(|v| v.parse().ok()).expect("flag value");
        match flag.as_str() {
            "--steps" => steps = value,
            "--width" => width = value,
            "--batch" => batch = value,
            other => panic!("unknown flag {other}"),
        }
    }
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = Mlp::new(width, &device);
    let x = Tensor::<2>::random([batch, width], Distribution::Normal(0.0, 1.0), &device);
    let y = x.clone().sin();
    let loss_fn = |m: &Mlp| m.loss(&x, &y);
    println!(
        "MLP {width}-{}-{}-{width} ({} params), batch {batch}, Flex CPU, {steps} timed steps each",
        4 * width,
        4 * width,
        model.num_params()
    );

    let lr = 1e-4;
    let plain_step = |optim: &mut ModuleOptimizer, model: Mlp| {
        let loss = loss_fn(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(lr, model, grads);
        let _ = loss.into_scalar::<f32>();
        model
    };
    let wrapped_step = |optim: &mut SharpnessAware, model: Mlp| {
        let (model, stats) = optim.step(lr, model, loss_fn);
        let _ = stats.read();
        model
    };
    let time = |f: &mut dyn FnMut(Mlp) -> Mlp, mut model: Mlp, n: usize| {
        let mut times = Vec::new();
        for _ in 0..n {
            let start = Instant::now();
            model = f(model);
            times.push(start.elapsed().as_secs_f64());
        }
        (model, times)
    };

    let mut plain = AdamWConfig::new().init();
    let mut sam = SamConfig::new()
        .with_rho(0.05)
        .init(AdamWConfig::new().init());
    // Warm-up: one step of each kind.
    model = plain_step(&mut plain, model);
    model = wrapped_step(&mut sam, model);

    let (m, t_plain) = time(&mut |m| plain_step(&mut plain, m), model, steps);
    let (m, t_sam) = time(&mut |m| wrapped_step(&mut sam, m), m, steps);
    let mut xsam = XsamConfig::new(SamConfig::new().with_rho(0.05))
        .with_alpha_period(100)
        .init(AdamWConfig::new().init());
    let (m, t_search) = time(&mut |m| wrapped_step(&mut xsam, m), m, 1);
    let (_, t_xsam) = time(&mut |m| wrapped_step(&mut xsam, m), m, steps);

    let (plain, sam, xsam_step, search) =
        (mean(&t_plain), mean(&t_sam), mean(&t_xsam), t_search[0]);
    let xsam_period = (search + 99.0 * xsam_step) / 100.0;
    println!("plain AdamW step         {:8.2} ms", plain * 1e3);
    println!(
        "SAM (k=1) step           {:8.2} ms  {:.2}x plain",
        sam * 1e3,
        sam / plain
    );
    println!(
        "XSAM step without search {:8.2} ms  {:.3}x SAM",
        xsam_step * 1e3,
        xsam_step / sam
    );
    println!("XSAM step with α search  {:8.2} ms", search * 1e3);
    println!(
        "XSAM, alpha_period 100   {:8.2} ms  {:.3}x SAM, {:.2}x plain",
        xsam_period * 1e3,
        xsam_period / sam,
        xsam_period / plain
    );
}
