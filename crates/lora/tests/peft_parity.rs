//! PEFT file parity against the fixtures of `tests/fixtures/make_fixtures.py`: an adapter made by
//! PEFT loads here with PEFT's logits, and an adapter saved here loads in PEFT with ours
//! (recorded by the script's `--check-rust` run in `rust_adapter_check.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use backbone::{CausalLm, LoadedModel, TokenBatch};
use burn::tensor::{Device, Tensor, TensorData};
use lora::{AdapterInit, LoraAdapter, LoraConfig, LoraSettings, Preset};
use safetensors::{Dtype, SafeTensors};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Host {
    shape: Vec<usize>,
    f32: Vec<f32>,
    i64: Vec<i64>,
}

fn read(path: &Path) -> HashMap<String, Host> {
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

fn base(device: &Device) -> CausalLm {
    LoadedModel::load(&fixtures().join("tiny_qwen2"), device)
        .expect("tiny_qwen2 loads")
        .model
}

fn batch(reference: &HashMap<String, Host>) -> TokenBatch {
    let ids = &reference["input_ids"];
    let mask = &reference["attention_mask"];
    let (b, s) = (ids.shape[0], ids.shape[1]);
    TokenBatch {
        ids: ids.i64.iter().map(|&x| x as u32).collect(),
        mask: mask.i64.iter().map(|&m| m != 0).collect(),
        batch: b,
        seq: s,
    }
}

/// max |a - b| over real-token positions of `[B, S, V]` logits.
fn max_diff(got: &[f32], want: &[f32], mask: &[bool], vocab: usize) -> f32 {
    let mut m = 0f32;
    for (i, &real) in mask.iter().enumerate() {
        if real {
            for v in 0..vocab {
                m = m.max((got[i * vocab + v] - want[i * vocab + v]).abs());
            }
        }
    }
    m
}

fn logits(model: &CausalLm, b: &TokenBatch) -> Vec<f32> {
    model
        .forward(b, None)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .unwrap()
}

#[test]
fn peft_adapter_gives_peft_logits_and_switches_merges_and_round_trips() {
    let device = Device::flex();
    let reference = read(&fixtures().join("reference.safetensors"));
    let b = batch(&reference);
    let vocab = reference["logits_peft"].shape[2];
    let mut model = base(&device);

    let cfg = lora::load_peft(
        &mut model,
        &fixtures().join("peft_adapter"),
        "peft",
        &device,
    )
    .unwrap();
    assert_eq!((cfg.r, cfg.lora_alpha), (4, 8.0));
    let mut down1 = None;
    lora::LoraTargets::for_each_linear(&model, &mut |p, l| {
        if p == "model.layers.1.mlp.down_proj" {
            let a = l.adapter("peft").unwrap();
            down1 = Some((a.rank(), a.settings.alpha));
        }
    });
    assert_eq!(
        down1,
        Some((2, 3.0)),
        "rank_pattern / alpha_pattern apply to that layer only"
    );

    let with = logits(&model, &b);
    let d = max_diff(&with, &reference["logits_peft"].f32, &b.mask, vocab);
    println!("PEFT adapter loaded here: max |logits - PEFT logits| = {d:.3e}");
    assert!(d < 1e-4, "{d}");

    // Off: the base model, from the same weights.
    lora::set_adapters_enabled(&mut model, false);
    let d = max_diff(
        &logits(&model, &b),
        &reference["logits_base"].f32,
        &b.mask,
        vocab,
    );
    assert!(d < 1e-4, "adapters off: {d}");
    lora::set_adapters_enabled(&mut model, true);

    // Merge gives the same function; unmerge gives the base weights back.
    lora::merge_adapters(&mut model);
    let d = max_diff(
        &logits(&model, &b),
        &reference["logits_peft"].f32,
        &b.mask,
        vocab,
    );
    assert!(d < 1e-4, "merged: {d}");
    lora::unmerge_adapters(&mut model);
    lora::set_adapters_enabled(&mut model, false);
    let d = max_diff(
        &logits(&model, &b),
        &reference["logits_base"].f32,
        &b.mask,
        vocab,
    );
    assert!(d < 1e-4, "unmerged, off: {d}");
    lora::set_adapters_enabled(&mut model, true);

    // Save → load into a fresh base: same logits and config.
    let dir = tempfile::tempdir().unwrap();
    lora::save_peft(&model, "peft", dir.path(), Some("tiny_qwen2")).unwrap();
    let mut again = base(&device);
    let cfg2 = lora::load_peft(&mut again, dir.path(), "x", &device).unwrap();
    assert_eq!(cfg2.rank_pattern, cfg.rank_pattern);
    assert_eq!(cfg2.alpha_pattern, cfg.alpha_pattern);
    let d = max_diff(&logits(&again, &b), &with, &b.mask, vocab);
    assert!(d < 1e-6, "round trip: {d}");
}

#[test]
fn named_adapters_coexist_and_one_is_active() {
    let device = Device::flex();
    let reference = read(&fixtures().join("reference.safetensors"));
    let b = batch(&reference);
    let vocab = reference["logits_peft"].shape[2];
    let mut model = base(&device);
    lora::load_peft(
        &mut model,
        &fixtures().join("peft_adapter"),
        "task_a",
        &device,
    )
    .unwrap();
    let cfg = LoraConfig::new(
        LoraSettings {
            rank: 2,
            alpha: 4.0,
            ..Default::default()
        },
        Preset::Mlp,
    );
    assert_eq!(lora::add_adapter(&mut model, "task_b", &cfg, &device), 6);
    assert_eq!(lora::adapter_names(&model), vec!["task_a", "task_b"]);
    // Adding task_b made it active where it was added (MLP); attention layers keep task_a.
    // Activating task_b everywhere leaves layers without it with no active adapter, and task_b
    // is fresh (B = 0): the base model.
    lora::set_active_adapter(&mut model, "task_b").unwrap();
    let d = max_diff(
        &logits(&model, &b),
        &reference["logits_base"].f32,
        &b.mask,
        vocab,
    );
    assert!(d < 1e-5, "{d}");
    lora::set_active_adapter(&mut model, "task_a").unwrap();
    let d = max_diff(
        &logits(&model, &b),
        &reference["logits_peft"].f32,
        &b.mask,
        vocab,
    );
    assert!(d < 1e-4, "{d}");
    assert!(lora::set_active_adapter(&mut model, "nope").is_err());
    assert_eq!(lora::remove_adapter(&mut model, "task_b"), 6);
    assert_eq!(lora::adapter_names(&model), vec!["task_a"]);
}

/// Deterministic non-zero factors for the Rust → PEFT direction.
fn rust_adapter(device: &Device) -> CausalLm {
    let mut model = base(device);
    let settings = LoraSettings {
        rank: 3,
        alpha: 5.0,
        dropout: 0.0,
        use_rslora: true,
        init: AdapterInit::Gaussian,
    };
    let mut k = 0usize;
    lora::LoraTargets::for_each_linear_mut(&mut model, &mut |path, layer| {
        if !lora::TargetModules::preset(Preset::Attention).matches(path) {
            return;
        }
        k += 1;
        let [d_in, d_out] = layer.dims();
        let r = settings.rank;
        let f = |n: usize, phase: f32| -> Vec<f32> {
            (0..n)
                .map(|i| 0.3 * ((i as f32) * 0.37 + phase).sin())
                .collect()
        };
        let a = Tensor::<2>::from_data(TensorData::new(f(d_in * r, k as f32), [d_in, r]), device);
        let b = Tensor::<2>::from_data(
            TensorData::new(f(r * d_out, 10.0 + k as f32), [r, d_out]),
            device,
        );
        layer.insert_adapter(LoraAdapter::new(
            "rust",
            settings.clone(),
            a,
            b,
            Some(lora::adapter_param_ids(path, "rust")),
        ));
    });
    model
}

#[test]
fn adapter_saved_here_matches_peft_as_recorded_by_the_script() {
    let device = Device::flex();
    let reference = read(&fixtures().join("reference.safetensors"));
    let b = batch(&reference);
    let model = rust_adapter(&device);
    let dir = fixtures().join("rust_adapter");
    if std::env::var("LORA_WRITE_FIXTURES").is_ok() {
        lora::save_peft(&model, "rust", &dir, Some("tiny_qwen2")).unwrap();
        let lg = logits(&model, &b);
        let mut off = rust_adapter(&device);
        lora::set_adapters_enabled(&mut off, false);
        let lb = logits(&off, &b);
        let shape = vec![b.batch, b.seq, lg.len() / (b.batch * b.seq)];
        let f = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i = |v: Vec<i64>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let ids = i(b.ids.iter().map(|&x| x as i64).collect());
        let mask = i(b.mask.iter().map(|&m| m as i64).collect());
        let (lgb, lbb) = (f(&lg), f(&lb));
        let views = vec![
            (
                "input_ids",
                safetensors::tensor::TensorView::new(Dtype::I64, vec![b.batch, b.seq], &ids)
                    .unwrap(),
            ),
            (
                "attention_mask",
                safetensors::tensor::TensorView::new(Dtype::I64, vec![b.batch, b.seq], &mask)
                    .unwrap(),
            ),
            (
                "logits",
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), &lgb).unwrap(),
            ),
            (
                "logits_base",
                safetensors::tensor::TensorView::new(Dtype::F32, shape, &lbb).unwrap(),
            ),
        ];
        std::fs::write(
            dir.join("logits.safetensors"),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        println!(
            "wrote {}; now run make_fixtures.py --check-rust",
            dir.display()
        );
    }
    // The committed adapter is what this code writes...
    let tmp = tempfile::tempdir().unwrap();
    lora::save_peft(&model, "rust", tmp.path(), Some("tiny_qwen2")).unwrap();
    let fresh = read(&tmp.path().join("adapter_model.safetensors"));
    let committed = read(&dir.join("adapter_model.safetensors"));
    assert_eq!(fresh.len(), committed.len());
    for (k, v) in &fresh {
        let c = &committed[k];
        assert_eq!(v.shape, c.shape, "{k}");
        assert!(
            v.f32.iter().zip(&c.f32).all(|(x, y)| (x - y).abs() < 1e-7),
            "{k}"
        );
    }
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["use_rslora"], true);
    assert_eq!(cfg["init_lora_weights"], "gaussian");
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["q_proj", "k_proj", "v_proj", "o_proj"])
    );
    // ...its logits are ours...
    let recorded = read(&dir.join("logits.safetensors"));
    let vocab = recorded["logits"].shape[2];
    let d = max_diff(&logits(&model, &b), &recorded["logits"].f32, &b.mask, vocab);
    assert!(d < 1e-5, "{d}");
    // ...and PEFT, loading it, gave the same logits (recorded by make_fixtures.py --check-rust).
    let check: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("rust_adapter_check.json"))
            .expect("run make_fixtures.py --check-rust"),
    )
    .unwrap();
    let peft_diff = check["max_abs_diff"].as_f64().unwrap();
    println!(
        "adapter saved here, loaded by PEFT {}: max |logits diff| = {peft_diff:.3e}",
        check["peft"]
    );
    assert!(peft_diff < 1e-4, "{peft_diff}");
}
