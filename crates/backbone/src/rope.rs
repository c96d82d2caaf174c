//! Rotary position embeddings in the "rotate half" layout of Hugging Face checkpoints, with
//! Llama-3's frequency scaling and linear scaling.

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::ModelConfig;

/// Precomputed inverse frequencies.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    position_scale: f32,
}

impl Rope {
    /// Inverse frequencies `theta^(-2i/d)`, adjusted by the config's `rope_scaling`.
    pub fn new(cfg: &ModelConfig) -> Self {
        let d = cfg.head_dim;
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / d as f64))
            .collect();
        let mut position_scale = 1.0;
        let inv_freq: Vec<f64> = match &cfg.rope_scaling {
            Some(rs) if rs.rope_type == "llama3" => {
                let old_ctx = rs.original_max_position_embeddings.unwrap_or(8192) as f64;
                let low_wavelen = old_ctx / rs.low_freq_factor;
                let high_wavelen = old_ctx / rs.high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / rs.factor
                        } else {
                            let smooth = (old_ctx / wavelen - rs.low_freq_factor)
                                / (rs.high_freq_factor - rs.low_freq_factor);
                            (1.0 - smooth) * f / rs.factor + smooth * f
                        }
                    })
                    .collect()
            }
            Some(rs) if rs.rope_type == "linear" => {
                position_scale = 1.0 / rs.factor as f32;
                base
            }
            _ => base,
        };
        // transformers keeps inv_freq in f32.
        Self {
            inv_freq: inv_freq.iter().map(|&x| x as f32).collect(),
            position_scale,
        }
    }

    /// `cos` and `sin` tables `[B, 1, S, d]` for positions given row-major `[B, S]`.
    pub fn cos_sin(
        &self,
        positions: &[f32],
        b: usize,
        s: usize,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let half = self.inv_freq.len();
        let d = half * 2;
        let mut cos = vec![0f32; b * s * d];
        let mut sin = vec![0f32; b * s * d];
        for (p_idx, &p) in positions.iter().enumerate() {
            let p = p * self.position_scale;
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let angle = p * f; // f32, as the reference computes it
                let (sn, cs) = angle.sin_cos();
                for j in [i, i + half] {
                    cos[p_idx * d + j] = cs;
                    sin[p_idx * d + j] = sn;
                }
            }
        }
        (
            Tensor::from_data(TensorData::new(cos, [b, 1, s, d]), device),
            Tensor::from_data(TensorData::new(sin, [b, 1, s, d]), device),
        )
    }

    /// `x·cos + rotate_half(x)·sin` for `x: [B, H, S, d]`, with `rotate_half([x1, x2]) = [-x2, x1]`.
    pub fn apply(x: Tensor<4>, cos_sin: &(Tensor<4>, Tensor<4>)) -> Tensor<4> {
        let d = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos_sin.0.clone() + rotated * cos_sin.1.clone()
    }
}
