//! The tiny MLP of the trajectory fixture, shared by the integration tests.
#![allow(dead_code)]

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;

/// `x·w1 + b1 → tanh → ·w2 + b2`, mean cross-entropy (Burn's `[d_in, d_out]` layout).
#[derive(Module, Debug)]
pub struct Mlp {
    pub w1: Param<Tensor<2>>,
    pub b1: Param<Tensor<1>>,
    pub w2: Param<Tensor<2>>,
    pub b2: Param<Tensor<1>>,
}

pub const NAMES: [&str; 4] = ["w1", "b1", "w2", "b2"];

impl Mlp {
    /// The weights of one trajectory entry (`{"w1": [...], ...}`).
    pub fn from_json(entry: &Value, dims: [usize; 3], device: &Device) -> Self {
        let [i, h, o] = dims;
        let matrix = |name: &str, shape: [usize; 2]| {
            Param::from_data(TensorData::new(floats(&entry[name]), shape), device)
        };
        let vector = |name: &str, n: usize| {
            Param::from_data(TensorData::new(floats(&entry[name]), [n]), device)
        };
        Self {
            w1: matrix("w1", [i, h]),
            b1: vector("b1", h),
            w2: matrix("w2", [h, o]),
            b2: vector("b2", o),
        }
    }

    /// Mean cross-entropy of the logits against class indices.
    pub fn loss(&self, x: &Tensor<2>, y: &Tensor<1, Int>) -> Tensor<1> {
        let h = (x.clone().matmul(self.w1.val()) + self.b1.val().unsqueeze()).tanh();
        let logits = h.matmul(self.w2.val()) + self.b2.val().unsqueeze();
        let n = y.dims()[0];
        log_softmax(logits, 1)
            .gather(1, y.clone().reshape([n, 1]))
            .mean()
            .neg()
    }

    /// The parameters flattened, in `NAMES` order.
    pub fn flat(&self) -> Vec<Vec<f32>> {
        vec![
            self.w1.val().into_data().try_to_vec::<f32>().unwrap(),
            self.b1.val().into_data().try_to_vec::<f32>().unwrap(),
            self.w2.val().into_data().try_to_vec::<f32>().unwrap(),
            self.b2.val().into_data().try_to_vec::<f32>().unwrap(),
        ]
    }
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The fixture: `tests/fixtures/trajectories.json`.
pub fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/trajectories.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// The fixture's batches: `(x, y)` for step `t` is batch `t % (N / batch)`.
pub fn batches(fixture: &Value, device: &Device) -> Vec<(Tensor<2>, Tensor<1, Int>)> {
    let dims: Vec<usize> = serde_json::from_value(fixture["dims"].clone()).unwrap();
    let batch = fixture["batch"].as_u64().unwrap() as usize;
    let x = floats(&fixture["x"]);
    let y: Vec<i64> = serde_json::from_value(fixture["y"].clone()).unwrap();
    let n = y.len();
    (0..n / batch)
        .map(|b| {
            let xs = x[b * batch * dims[0]..(b + 1) * batch * dims[0]].to_vec();
            let ys = y[b * batch..(b + 1) * batch].to_vec();
            (
                Tensor::from_data(TensorData::new(xs, [batch, dims[0]]), device),
                Tensor::from_data(TensorData::new(ys, [batch]), device),
            )
        })
        .collect()
}
