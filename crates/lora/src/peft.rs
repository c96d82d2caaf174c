//! PEFT-compatible adapter files: `adapter_model.safetensors` plus `adapter_config.json`.
//!
//! Keys and shapes are PEFT's: `base_model.model.<path>.lora_A.weight` is `[r, in]` and
//! `base_model.model.<path>.lora_B.weight` is `[out, r]` (the transposes of the `[in, r]` and
//! `[r, out]` factors kept here). A directory written by [`save_peft`] loads with
//! `PeftModel.from_pretrained(base, dir)`, and one written by PEFT loads with [`load_peft`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::Dtype;
use serde_json::Value;

use crate::linear::{LoraAdapter, adapter_param_ids};
use crate::{AdapterInit, LoraError, LoraSettings, LoraTargets};

const WEIGHTS: &str = "adapter_model.safetensors";
use formats::peft::ADAPTER_CONFIG as CONFIG;
use formats::safetensors::to_f32;

pub use formats::peft::PeftConfig;
const PREFIX: &str = "base_model.model.";

/// PEFT's rule for a plain key: the path equals it or ends in `.` + key.
fn suffix_match(key: &str, path: &str) -> bool {
    path == key || path.strip_suffix(key).is_some_and(|h| h.ends_with('.'))
}

/// Writes adapter `name` as a PEFT directory (`adapter_model.safetensors`,
/// `adapter_config.json`). `base_model` goes into `base_model_name_or_path`.
pub fn save_peft<M: LoraTargets>(
    model: &M,
    name: &str,
    dir: &Path,
    base_model: Option<&str>,
) -> Result<(), LoraError> {
    struct Entry {
        path: String,
        a: Vec<f32>,
        b: Vec<f32>,
        d_in: usize,
        d_out: usize,
        r: usize,
        alpha: f64,
        settings: LoraSettings,
    }
    let mut entries = Vec::new();
    let mut all_paths = Vec::new();
    model.for_each_linear(&mut |path, layer| {
        all_paths.push(path.to_string());
        if let Some(ad) = layer.adapter(name) {
            let [d_in, r] = ad.a.shape().dims();
            let d_out = ad.b.shape().dims::<2>()[1];
            // [in, r] → [r, in] and [r, out] → [out, r]
            let a =
                ad.a.val()
                    .transpose()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32");
            let b =
                ad.b.val()
                    .transpose()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32");
            entries.push(Entry {
                path: path.to_string(),
                a,
                b,
                d_in,
                d_out,
                r,
                alpha: ad.settings.alpha,
                settings: ad.settings.clone(),
            });
        }
    });
    let Some(first) = entries.first() else {
        return Err(LoraError::NoSuchAdapter(name.to_string()));
    };
    let (r0, alpha0, s0) = (first.r, first.alpha, first.settings.clone());

    // target_modules: module names when they select exactly the adapted layers, else full paths.
    let adapted: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut names: Vec<String> = Vec::new();
    for p in &adapted {
        let n = p.rsplit('.').next().unwrap_or(p).to_string();
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let by_name_exact = all_paths
        .iter()
        .all(|p| names.iter().any(|n| suffix_match(n, p)) == adapted.contains(&p.as_str()));
    let targets: Vec<String> = if by_name_exact {
        names
    } else {
        adapted.iter().map(|s| s.to_string()).collect()
    };

    let mut rank_pattern = BTreeMap::new();
    let mut alpha_pattern = BTreeMap::new();
    for e in &entries {
        if e.r != r0 {
            rank_pattern.insert(e.path.clone(), e.r);
        }
        if e.alpha != alpha0 {
            alpha_pattern.insert(e.path.clone(), e.alpha);
        }
    }
    let config = PeftConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: r0,
        lora_alpha: alpha0,
        lora_dropout: s0.dropout,
        use_rslora: s0.use_rslora,
        init_lora_weights: match s0.init {
            AdapterInit::KaimingUniform => Value::Bool(true),
            AdapterInit::Gaussian => Value::String("gaussian".into()),
        },
        target_modules: Value::from(targets),
        rank_pattern,
        alpha_pattern,
        bias: "none".into(),
        fan_in_fan_out: false,
        use_dora: false,
        modules_to_save: None,
        base_model_name_or_path: base_model.map(str::to_string),
        inference_mode: true,
    };

    let mut raw: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for e in &entries {
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        raw.push((
            format!("{PREFIX}{}.lora_A.weight", e.path),
            bytes(&e.a),
            vec![e.r, e.d_in],
        ));
        raw.push((
            format!("{PREFIX}{}.lora_B.weight", e.path),
            bytes(&e.b),
            vec![e.d_out, e.r],
        ));
    }
    let weights_path = dir.join(WEIGHTS);
    let views = raw
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| LoraError::format(&weights_path, format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| LoraError::format(&weights_path, e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| LoraError::io(dir, e))?;
    // Atomic writes (`formats::atomic`): a kill leaves the old adapter or the new one.
    formats::atomic::write_atomic(&weights_path, &bytes)?;
    let config_path = dir.join(CONFIG);
    let mut json = serde_json::to_string_pretty(&config).expect("config serialises");
    json.push('\n');
    formats::atomic::write_atomic(&config_path, json.as_bytes())?;
    Ok(())
}

/// Reads and checks `adapter_config.json` from a PEFT directory ([`PeftConfig::from_dir`]).
pub fn read_peft_config(dir: &Path) -> Result<PeftConfig, LoraError> {
    PeftConfig::from_dir(dir).map_err(LoraError::from)
}

/// Loads a PEFT LoRA directory into the model as adapter `name` (replacing one of that name)
/// and makes it active. Every tensor in the file must land on a layer of the model. Factors
/// are trainable, with ids from [`adapter_param_ids`]. Returns the file's config.
pub fn load_peft<M: LoraTargets>(
    model: &mut M,
    dir: &Path,
    name: &str,
    device: &Device,
) -> Result<PeftConfig, LoraError> {
    let config = read_peft_config(dir)?;
    let path = dir.join(WEIGHTS);
    let bytes = std::fs::read(&path).map_err(|e| LoraError::io(&path, e))?;
    let st = formats::safetensors::deserialize(&bytes).map_err(|m| LoraError::format(&path, m))?;

    // layer path → (A [r, in], B [out, r]) as host data.
    type HostFactor = (Vec<f32>, Vec<usize>);
    let mut found: BTreeMap<String, (Option<HostFactor>, Option<HostFactor>)> = BTreeMap::new();
    for key in st.names() {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            return Err(LoraError::format(
                &path,
                format!("unexpected key {key:?} (no `{PREFIX}` prefix)"),
            ));
        };
        // PEFT drops the adapter name when saving; accept `lora_A.<name>.weight` too.
        let (layer, is_a) = if let Some(l) = rest.strip_suffix(".lora_A.weight") {
            (l.to_string(), true)
        } else if let Some(l) = rest.strip_suffix(".lora_B.weight") {
            (l.to_string(), false)
        } else if let Some((l, tail)) = rest
            .split_once(".lora_A.")
            .or_else(|| rest.split_once(".lora_B."))
        {
            if !tail.ends_with(".weight") {
                return Err(LoraError::format(
                    &path,
                    format!("unsupported tensor {key:?}"),
                ));
            }
            (l.to_string(), rest.contains(".lora_A."))
        } else {
            return Err(LoraError::format(
                &path,
                format!("unsupported tensor {key:?} (only lora_A/lora_B weights)"),
            ));
        };
        let view = st
            .tensor(key)
            .map_err(|e| LoraError::format(&path, e.to_string()))?;
        let data = to_f32(view.dtype(), view.data()).ok_or_else(|| {
            LoraError::format(
                &path,
                format!("{key}: dtype {:?} not supported", view.dtype()),
            )
        })?;
        let entry = found.entry(layer).or_default();
        let slot = if is_a { &mut entry.0 } else { &mut entry.1 };
        *slot = Some((data, view.shape().to_vec()));
    }

    // Every factor is checked against its layer before any layer is touched, so a bad file
    // leaves the model as it was.
    let check = |lpath: &str, d_in: usize, d_out: usize| -> Result<usize, LoraError> {
        let (a, b) = &found[lpath];
        let (Some((_, ash)), Some((_, bsh))) = (a, b) else {
            return Err(LoraError::format(
                &path,
                format!("{lpath}: lora_A or lora_B is missing"),
            ));
        };
        let r = ash.first().copied().unwrap_or(0);
        if r == 0 || ash != &[r, d_in] || bsh != &[d_out, r] {
            return Err(LoraError::format(
                &path,
                format!(
                    "{lpath}: lora_A {ash:?} / lora_B {bsh:?} do not fit a layer with in={d_in}, out={d_out} (expected [r, {d_in}] and [{d_out}, r], r >= 1)"
                ),
            ));
        }
        Ok(r)
    };
    let mut err: Option<LoraError> = None;
    let mut matched = 0usize;
    model.for_each_linear(&mut |lpath, layer| {
        if err.is_none() && found.contains_key(lpath) {
            let [d_in, d_out] = layer.dims();
            matched += 1;
            err = check(lpath, d_in, d_out).err();
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if matched != found.len() {
        let mut paths = Vec::new();
        model.for_each_linear(&mut |p, _| paths.push(p.to_string()));
        let stray: Vec<&String> = found.keys().filter(|k| !paths.contains(k)).collect();
        return Err(LoraError::format(
            &path,
            format!("adapter tensors for layers the model does not have: {stray:?}"),
        ));
    }
    model.for_each_linear_mut(&mut |lpath, layer| {
        let Some((Some((a, _)), Some((b, _)))) = found.get(lpath) else {
            return;
        };
        let [d_in, d_out] = layer.dims();
        let Ok(r) = check(lpath, d_in, d_out) else {
            return;
        };
        let alpha = config
            .alpha_pattern
            .iter()
            .find(|(k, _)| suffix_match(k, lpath))
            .map_or(config.lora_alpha, |(_, &v)| v);
        let settings = LoraSettings {
            rank: r,
            alpha,
            dropout: config.lora_dropout,
            use_rslora: config.use_rslora,
            init: if config.init_lora_weights.as_str() == Some("gaussian") {
                AdapterInit::Gaussian
            } else {
                AdapterInit::KaimingUniform
            },
        };
        // [r, in] → [in, r]; [out, r] → [r, out]
        let a: Tensor<2> =
            Tensor::<2>::from_data(TensorData::new(a.clone(), [r, d_in]), device).transpose();
        let b: Tensor<2> =
            Tensor::<2>::from_data(TensorData::new(b.clone(), [d_out, r]), device).transpose();
        let ids = adapter_param_ids(lpath, name);
        layer.insert_adapter(LoraAdapter::new(name, settings, a, b, Some(ids)));
    });
    Ok(config)
}
