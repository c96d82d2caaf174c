// Shared helpers: the tiny Qwen2 and PEFT adapter fixtures of `crates/lora/tests/fixtures`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use backbone::{CausalLm, LoadedModel, TokenBatch};
use burn::tensor::Device;
use safetensors::{Dtype, SafeTensors};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lora/tests/fixtures")
}

pub struct Host {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

pub fn read(path: &Path) -> HashMap<String, Host> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let shape = v.shape().to_vec();
            let d = v.data();
            let (f, i) = match v.dtype() {
                Dtype::F32 => (
                    d.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                    vec![],
                ),
                Dtype::I64 => (
                    vec![],
                    d.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                other => panic!("{k}: {other:?}"),
            };
            (
                k,
                Host {
                    shape,
                    f32: f,
                    i64: i,
                },
            )
        })
        .collect()
}

/// The tiny Qwen2 base model on `device`.
pub fn tiny(device: &Device) -> CausalLm {
    LoadedModel::load(&fixtures().join("tiny_qwen2"), device)
        .expect("tiny_qwen2 loads")
        .model
}

/// The tiny model with the PEFT fixture adapter loaded as `name`.
pub fn tiny_with_adapter(device: &Device, name: &str) -> CausalLm {
    let mut m = tiny(device);
    lora::load_peft(&mut m, &fixtures().join("peft_adapter"), name, device).unwrap();
    m
}

pub fn token_batch(t: &HashMap<String, Host>, prefix: &str) -> TokenBatch {
    let ids = &t[&format!("{prefix}.input_ids")];
    let mask = &t[&format!("{prefix}.attention_mask")];
    TokenBatch {
        ids: ids.i64.iter().map(|&x| x as u32).collect(),
        mask: mask.i64.iter().map(|&m| m != 0).collect(),
        batch: ids.shape[0],
        seq: ids.shape[1],
    }
}
