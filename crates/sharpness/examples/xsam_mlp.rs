//! XSAM around AdamW on a tiny MLP, on the CPU (Flex) backend: prints the α*/ψ/‖g_k‖ log as
//! JSON lines, then the SAM sharpness and a 1-D filter-normalised landscape slice as JSON.
//!
//! ```text
//! cargo run -p sharpness --features wgpu --example xsam_mlp
//! ```

use burn::module::{Module, Param};
use burn::optim::AdamWConfig;
use burn::tensor::{Device, Distribution, Tensor};
use sharpness::{LandscapeConfig, SamConfig, XsamConfig, sam_sharpness};

#[derive(Module, Debug)]
struct Mlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
}

impl Mlp {
    fn loss(&self, x: &Tensor<2>, y: &Tensor<2>) -> Tensor<1> {
        let h = (x.clone().matmul(self.w1.val()) + self.b1.val().unsqueeze()).tanh();
        (h.matmul(self.w2.val()) - y.clone()).square().mean()
    }
}

fn main() {
    let device = Device::flex().autodiff();
    device.seed(0);
    let normal = |shape: [usize; 2], std: f64| {
        Tensor::<2>::random(shape, Distribution::Normal(0.0, std), &device)
    };
    let mut model = Mlp {
        w1: Param::from_tensor(normal([8, 32], 0.4)),
        b1: Param::from_tensor(Tensor::zeros([32], &device)),
        w2: Param::from_tensor(normal([32, 1], 0.2)),
    };
    let x = normal([64, 8], 1.0);
    let y = x.clone().sum_dim(1).sin();

    // ρ = 0.15, ρ_max = 2ρ, k = 2 ascent steps, α re-estimated every 25 steps.
    let mut optim = XsamConfig::new(SamConfig::new().with_rho(0.15).with_ascent_steps(2))
        .with_alpha_period(25)
        .init(AdamWConfig::new().init());
    for _ in 0..100 {
        let stats;
        (model, stats) = optim.step(1e-2, model, |m: &Mlp| m.loss(&x, &y));
        let log = stats.read();
        if log.step % 10 == 0 {
            println!("{}", serde_json::to_string(&log).unwrap());
        }
    }

    let sharpness = sam_sharpness(&model, 0.05, 1e-12, |m: &Mlp| m.loss(&x, &y));
    println!("{}", serde_json::to_string(&sharpness).unwrap());
    let slice = LandscapeConfig::new()
        .with_points(11)
        .evaluate(&model, |m: &Mlp| m.loss(&x, &y));
    println!("{}", serde_json::to_string(&slice).unwrap());
}
