//! EWC's empirical diagonal Fisher against PyTorch: the LoRA fixture model (tiny Qwen2 + PEFT
//! adapter) and its two SFT rows, each row's own loss differentiated and squared, averaged
//! (`tests/fixtures/make_ewc_fisher.py` made `ewc_fisher.safetensors`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use backbone::{LoadedModel, TokenBatch};
use burn::tensor::Device;
use continual::plugins::ewc::diagonal_fisher;
use continual::plugins::trainable::for_each_trainable;
use finetune::{SftBatch, TrainMode};
use safetensors::{Dtype, SafeTensors};

fn lora_fixtures() -> PathBuf {
    common::root().join("crates/lora/tests/fixtures")
}

/// Every tensor of a safetensors file as f64 values with its shape.
fn read(path: &std::path::Path) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let d = v.data();
            let values = match v.dtype() {
                Dtype::F32 => d
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                Dtype::I64 => d
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                other => panic!("{k}: {other:?}"),
            };
            (k, (v.shape().to_vec(), values))
        })
        .collect()
}

#[test]
fn ewc_fisher_matches_pytorch_on_the_lora_fixture() {
    let device = Device::flex().autodiff();
    let mut model = LoadedModel::load(&lora_fixtures().join("tiny_qwen2"), &device)
        .unwrap()
        .model;
    lora::load_peft(
        &mut model,
        &lora_fixtures().join("peft_adapter"),
        "a",
        &device,
    )
    .unwrap();
    let model = finetune::prepare_model(
        model,
        &TrainMode::Lora {
            adapter: "a".into(),
        },
    )
    .unwrap();
    let fx = read(&lora_fixtures().join("objectives.safetensors"));
    let (shape, ids) = &fx["sft.input_ids"];
    let (rows, seq) = (shape[0], shape[1]);
    let (mask, answer) = (&fx["sft.attention_mask"].1, &fx["sft.answer_mask"].1);
    // One batch per row: the Fisher of per-sample gradients.
    let batches: Vec<SftBatch> = (0..rows)
        .map(|r| {
            let span = r * seq..(r + 1) * seq;
            SftBatch {
                tokens: TokenBatch {
                    ids: ids[span.clone()].iter().map(|&x| x as u32).collect(),
                    mask: mask[span.clone()].iter().map(|&m| m != 0.0).collect(),
                    batch: 1,
                    seq,
                },
                answer_mask: answer[span].iter().map(|&m| m != 0.0).collect(),
            }
        })
        .collect();
    let fisher = diagonal_fisher(&model, &batches);
    let mut index = HashMap::new();
    for_each_trainable(&model, |id, _| {
        let n = index.len();
        index.insert(id, n);
    });
    let want = read(&common::root().join("crates/continual/tests/fixtures/ewc_fisher.safetensors"));
    let (mut checked, mut worst) = (0, 0f64);
    lora::LoraTargets::for_each_linear(&model, &mut |path, layer| {
        let Some(ad) = layer.adapter("a") else { return };
        for (which, id) in [("lora_A", ad.a.id), ("lora_B", ad.b.id)] {
            let (shape, w) = &want[&format!("fisher.{path}.{which}")];
            let got: Vec<f32> = fisher.0[index[&id]]
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            // Ours are stored [in, r] and [r, out]; PEFT's are the transposes.
            let (pr, pc) = (shape[0], shape[1]);
            assert_eq!(got.len(), pr * pc, "{path}.{which}");
            let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
            for i in 0..pr {
                for j in 0..pc {
                    let ours = f64::from(got[j * pr + i]);
                    worst = worst.max((ours - w[i * pc + j]).abs() / scale);
                }
            }
            checked += 1;
        }
    });
    assert_eq!(checked, want.len(), "every adapted factor compared");
    assert!(
        worst < 1e-3,
        "worst Fisher error relative to the factor's max: {worst:.2e}"
    );
}
