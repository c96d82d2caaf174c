//! GGUF models as weight sources: llama.cpp's tensor names mapped back to Hugging Face keys,
//! and the Q/K row permutation that llama.cpp applies to Llama checkpoints undone. The file
//! itself (metadata, tensor directory, dequantisation, the configuration it describes) is read
//! by the Burn-free [`formats::gguf`], re-exported here.

use std::collections::BTreeMap;
use std::path::Path;

pub use formats::gguf::{
    GgmlType, GgufFile, MetaValue, TensorInfo, TokenizerMetadata, config_from_metadata,
};

use crate::config::{Family, ModelConfig};
use crate::error::LoadError;
use crate::weights::{HostTensor, WeightSource};

/// Undoes llama.cpp's `permute(w, n_head)`: rows were reordered from the "rotate half" layout to
/// interleaved pairs. `w` is `[n_head·d, cols]`; the inverse maps `(h, j, i)` back to `(h, i, j)`.
fn unpermute(t: &HostTensor, n_head: usize) -> HostTensor {
    let (rows, cols) = (t.shape[0], t.shape.get(1).copied().unwrap_or(1));
    let d = rows / n_head;
    let half = d / 2;
    let mut out = vec![0.0; t.data.len()];
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                // GGUF row h·d + j·2 + i holds HF row h·d + i·half + j.
                let src = h * d + j * 2 + i;
                let dst = h * d + i * half + j;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    HostTensor {
        shape: t.shape.clone(),
        data: out,
    }
}

/// A GGUF model seen through Hugging Face keys.
pub struct GgufSource {
    /// The parsed file.
    pub file: GgufFile,
    /// The configuration the metadata describes.
    pub config: ModelConfig,
    /// HF key → GGUF name.
    names: BTreeMap<String, String>,
}

fn hf_name(gguf: &str) -> Option<String> {
    let simple = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ];
    if let Some((_, hf)) = simple.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let hf_part = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "post_attention_norm" => "post_attention_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_part}.{kind}"))
}

impl GgufSource {
    /// Opens a GGUF model file and derives its configuration from the metadata.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file = GgufFile::open(path)?;
        let config = config_from_metadata(&file).map_err(|e| LoadError::from(e.in_file(path)))?;
        let gemma = config.family == Family::Gemma2;
        let mut names = BTreeMap::new();
        for t in &file.tensors {
            // Gemma2's GGUF calls the pre-MLP norm `ffn_norm` (the post-attention norm has its own name).
            let hf = if gemma && t.name.ends_with(".ffn_norm.weight") {
                hf_name(&t.name)
                    .map(|n| n.replace("post_attention_layernorm", "pre_feedforward_layernorm"))
            } else {
                hf_name(&t.name)
            };
            let hf = hf.unwrap_or_else(|| format!("gguf:{}", t.name));
            names.insert(hf, t.name.clone());
        }
        Ok(Self {
            file,
            config,
            names,
        })
    }
}

impl WeightSource for GgufSource {
    fn source_name(&self) -> String {
        self.file.path().display().to_string()
    }

    fn keys(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn shape(&self, key: &str) -> Option<Vec<usize>> {
        let name = self.names.get(key)?;
        let t = self.file.tensors.iter().find(|t| &t.name == name)?;
        Some(t.dims.iter().rev().copied().collect())
    }

    fn tensor(&self, key: &str) -> Result<HostTensor, LoadError> {
        let name = self
            .names
            .get(key)
            .ok_or_else(|| LoadError::MissingTensor {
                source_name: self.source_name(),
                key: key.to_string(),
            })?;
        let mut t = self.file.dequantize(name)?;
        let cfg = &self.config;
        if cfg.family == Family::Llama {
            if key.ends_with("q_proj.weight") {
                t = unpermute(&t, cfg.num_attention_heads);
            } else if key.ends_with("k_proj.weight") {
                t = unpermute(&t, cfg.num_key_value_heads);
            }
        }
        if cfg.family == Family::Gemma2 && key.ends_with("norm.weight") {
            // llama.cpp's converter stores Gemma's norm weights with the +1 already added.
            t.data.iter_mut().for_each(|x| *x -= 1.0);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(n_head, 2, d/2, cols).swapaxes(1, 2).reshape(rows, cols).
        let (n_head, d, cols) = (2, 4, 3);
        let rows = n_head * d;
        let original: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let mut permuted = vec![0.0; rows * cols];
        for h in 0..n_head {
            for i in 0..2 {
                for j in 0..d / 2 {
                    let src = h * d + i * (d / 2) + j;
                    let dst = h * d + j * 2 + i;
                    permuted[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&original[src * cols..(src + 1) * cols]);
                }
            }
        }
        let back = unpermute(
            &HostTensor {
                shape: vec![rows, cols],
                data: permuted,
            },
            n_head,
        );
        assert_eq!(back.data, original);
    }
}
