//! Parity with transformers: tiny random models of every family, made by
//! `tests/fixtures/make_fixtures.py`, must give the reference logits (1e-4 max abs, f32) and
//! the reference gradients of the mean next-token loss (1e-3 relative).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use backbone::weights::{HostTensor, SafetensorsSource, WeightSource};
use backbone::{CausalLm, LoadedModel, TokenBatch};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}

struct Reference {
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
    floats: BTreeMap<String, HostTensor>,
}

fn reference(case: &str) -> Reference {
    let bytes = std::fs::read(fixture(case).join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ints = |name: &str| -> Vec<Vec<i64>> {
        let Ok(v) = st.tensor(name) else {
            return vec![];
        };
        let cols = v.shape()[1];
        let flat: Vec<i64> = v
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        flat.chunks(cols).map(<[i64]>::to_vec).collect()
    };
    let src = SafetensorsSource::open(&fixture(case).join("reference.safetensors")).unwrap();
    let floats = src
        .keys()
        .into_iter()
        .filter_map(|k| src.tensor(&k).ok().map(|t| (k, t)))
        .collect();
    Reference {
        ids: ints("input_ids"),
        mask: ints("attention_mask"),
        floats,
    }
}

fn batch_of(r: &Reference) -> TokenBatch {
    let seq = r.ids[0].len();
    let mask: Vec<bool> = if r.mask.is_empty() {
        vec![true; r.ids.len() * seq]
    } else {
        r.mask.iter().flatten().map(|&m| m == 1).collect()
    };
    TokenBatch {
        ids: r.ids.iter().flatten().map(|&x| x as u32).collect(),
        mask,
        batch: r.ids.len(),
        seq,
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

/// Max |a - b| over the positions whose mask is set (logits of padding are meaningless).
fn max_diff_masked(got: &[f32], want: &[f32], mask: &[bool], vocab: usize) -> f32 {
    let mut worst = 0f32;
    for (p, &m) in mask.iter().enumerate() {
        if m {
            for v in 0..vocab {
                worst = worst.max((got[p * vocab + v] - want[p * vocab + v]).abs());
            }
        }
    }
    worst
}

fn check_logits(case: &str) {
    let device = Device::flex();
    let lm = LoadedModel::load(&fixture(case), &device).unwrap_or_else(|e| panic!("{case}: {e}"));
    let r = reference(case);
    let batch = batch_of(&r);
    let vocab = lm.model.config.vocab_size;
    let got = values(lm.model.forward(&batch, None));
    let diff = max_diff_masked(&got, &r.floats["logits"].data, &batch.mask, vocab);
    println!("{case}: max |logit - transformers| = {diff:.2e}");
    assert!(
        diff < 1e-4,
        "{case}: logits differ from transformers by {diff}"
    );

    if let Some(alone) = r.floats.get("logits_alone_row1") {
        // Row 1 is left-padded: its real tokens alone must give the same logits.
        let ids: Vec<u32> = batch.ids[batch.seq..]
            .iter()
            .zip(&batch.mask[batch.seq..])
            .filter(|(_, m)| **m)
            .map(|(i, _)| *i)
            .collect();
        let single = values(lm.model.forward(&TokenBatch::single(&ids), None));
        let d = single
            .iter()
            .zip(&alone.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d < 1e-4,
            "{case}: padded row differs from the sequence alone by {d}"
        );
        // And our own padded output equals our own unpadded output at the real tokens.
        let padded_row1 = &got[batch.seq * vocab..];
        let offset = batch.mask[batch.seq..].iter().take_while(|m| !**m).count();
        let d = single
            .iter()
            .zip(&padded_row1[offset * vocab..])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "{case}: left padding changes the outputs by {d}");
    }
}

/// Collects each float parameter's gradient under its checkpoint key (PyTorch orientation).
struct GradsByKey<'a> {
    path: Vec<String>,
    grads: &'a burn::tensor::Gradients,
    out: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for GradsByKey<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let key = self.path.join(".");
        if let Some(g) = param.val().grad(self.grads) {
            let dims = g.dims();
            let mut data = values(g);
            if D == 2 && !key.ends_with("embed_tokens.weight") {
                // Linear weights are stored [in, out]; PyTorch's are [out, in].
                let t = HostTensor {
                    shape: dims.to_vec(),
                    data,
                }
                .transposed();
                data = t.data;
            }
            self.out.insert(key, data);
        }
    }
}

fn check_gradients(case: &str) {
    let device = Device::flex().autodiff();
    let lm = LoadedModel::load(&fixture(case), &device).unwrap();
    let model: CausalLm = lm.model.set_require_grad(true);
    let r = reference(case);
    let batch = batch_of(&r);
    let loss = backbone::score::next_token_loss(&model, &batch);
    let loss_value = values(loss.clone())[0];
    let want = r.floats["loss"].data[0];
    assert!(
        (loss_value - want).abs() < 1e-4,
        "{case}: loss {loss_value} vs transformers {want}"
    );
    let grads = loss.backward();
    let mut v = GradsByKey {
        path: vec![],
        grads: &grads,
        out: BTreeMap::new(),
    };
    model.visit(&mut v);
    let mut checked = 0;
    for (name, reference) in r
        .floats
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("grad.").map(|n| (n, t)))
    {
        let got = v
            .out
            .get(name)
            .unwrap_or_else(|| panic!("{case}: no gradient for {name}"));
        let scale = reference
            .data
            .iter()
            .fold(0f32, |m, x| m.max(x.abs()))
            .max(1e-12);
        let err = got
            .iter()
            .zip(&reference.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
            / scale;
        println!("{case}: grad {name}: max relative error {err:.2e}");
        assert!(
            err < 1e-3,
            "{case}: gradient of {name} off by {err} (relative)"
        );
        checked += 1;
    }
    assert!(
        checked >= 4,
        "{case}: only {checked} gradients in the fixture"
    );
}

#[test]
fn llama_tied_matches_transformers() {
    check_logits("llama_tied");
    check_gradients("llama_tied");
}

#[test]
fn llama3_rope_scaling_untied_matches_transformers() {
    check_logits("llama3_untied");
    check_gradients("llama3_untied");
}

#[test]
fn qwen2_with_biases_matches_transformers() {
    check_logits("qwen2_untied");
    check_gradients("qwen2_untied");
    check_logits("qwen2_tied");
}

#[test]
fn gemma2_softcapping_and_sliding_window_match_transformers() {
    check_logits("gemma2");
    check_gradients("gemma2");
}

#[test]
fn sharded_and_bf16_checkpoints_load_to_the_same_model() {
    check_logits("llama_sharded");
    check_logits("llama_bf16");
}

#[test]
fn gguf_quantised_weights_dequantise_and_unpermute_like_gguf_py() {
    let path = fixture("gguf_llama").join("model.gguf");
    let source = backbone::gguf::GgufSource::open(&path).unwrap();
    let r = reference("gguf_llama");
    let mut checked = 0;
    for (key, want) in r.floats.iter().filter(|(k, _)| k.ends_with(".weight")) {
        let got = source.tensor(key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.shape, want.shape, "{key}");
        let d = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-6, "{key}: dequantised values differ by {d}");
        checked += 1;
    }
    assert!(checked > 10);
    let device = Device::flex();
    let model = backbone::load::load_model(&source.config, &source, &device).unwrap();
    let batch = batch_of(&r);
    let got = values(model.forward(&batch, None));
    let d = got
        .iter()
        .zip(&r.floats["logits"].data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("gguf_llama: max |logit - transformers| = {d:.2e}");
    assert!(d < 1e-4, "GGUF model logits differ by {d}");
}

#[test]
fn exported_weights_reload_to_identical_logits() {
    // GGUF → HF directory → reload: the exported checkpoint is the same model.
    let device = Device::flex();
    let path = fixture("gguf_llama").join("model.gguf");
    let source = backbone::gguf::GgufSource::open(&path).unwrap();
    let model = backbone::load::load_model(&source.config, &source, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        source.config.to_hf_json().to_string(),
    )
    .unwrap();
    backbone::weights::write_safetensors(
        &dir.path().join("model.safetensors"),
        &backbone::load::export_weights(&model),
    )
    .unwrap();
    let reloaded = LoadedModel::load(dir.path(), &device).unwrap().model;
    let batch = TokenBatch::single(&[3, 17, 42, 99, 7, 1]);
    let a = values(model.forward(&batch, None));
    let b = values(reloaded.forward(&batch, None));
    assert_eq!(a, b);
}

#[test]
fn mismatched_checkpoints_are_errors_that_name_the_tensor() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("llama_tied").join(f), dir.path().join(f)).unwrap();
    }
    // A config that disagrees with the weights on the hidden size.
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    cfg["intermediate_size"] = 96.into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let err = LoadedModel::load(dir.path(), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.layers.0.mlp.gate_proj.weight")
            && err.contains("[128, 64]")
            && err.contains("[96, 64]"),
        "{err}"
    );
    // Untied config on tied weights: the head is missing.
    cfg["intermediate_size"] = 128.into();
    cfg["tie_word_embeddings"] = false.into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let err = LoadedModel::load(dir.path(), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing tensor `lm_head.weight`"), "{err}");
}
