//! Building a [`CausalLm`] from a [`WeightSource`], and the reverse (export to checkpoint keys).

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::{Device, Tensor, TensorData};
use lora::LoraLinear;

use crate::config::{Family, ModelConfig};
use crate::error::LoadError;
use crate::model::{Attention, CausalLm, DecoderLayer, DecoderStack, Mlp, RmsNorm};
use crate::weights::{HostTensor, WeightSource};

/// Buffers some exporters write that carry no weights.
fn ignorable(key: &str) -> bool {
    key.ends_with("rotary_emb.inv_freq")
}

struct Loader<'a> {
    source: &'a dyn WeightSource,
    device: &'a Device,
    used: BTreeSet<String>,
}

impl Loader<'_> {
    fn host(&mut self, key: &str, expected: &[usize]) -> Result<HostTensor, LoadError> {
        let name = self.source.source_name();
        let found = self
            .source
            .shape(key)
            .ok_or_else(|| LoadError::MissingTensor {
                source_name: name.clone(),
                key: key.to_string(),
            })?;
        if found != expected {
            return Err(LoadError::ShapeMismatch {
                source_name: name,
                key: key.to_string(),
                expected: expected.to_vec(),
                found,
            });
        }
        self.used.insert(key.to_string());
        self.source.tensor(key)
    }

    fn t1(&mut self, key: &str, n: usize) -> Result<Tensor<1>, LoadError> {
        let h = self.host(key, &[n])?;
        Ok(Tensor::from_data(TensorData::new(h.data, [n]), self.device))
    }

    fn t2(&mut self, key: &str, rows: usize, cols: usize) -> Result<Tensor<2>, LoadError> {
        let h = self.host(key, &[rows, cols])?;
        Ok(Tensor::from_data(
            TensorData::new(h.data, [rows, cols]),
            self.device,
        ))
    }

    /// A PyTorch linear `[out, in]` stored as `[in, out]`.
    fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<LoraLinear, LoadError> {
        let h = self
            .host(&format!("{prefix}.weight"), &[d_out, d_in])?
            .transposed();
        let w = Tensor::from_data(TensorData::new(h.data, [d_in, d_out]), self.device);
        let b = if bias {
            Some(self.t1(&format!("{prefix}.bias"), d_out)?)
        } else {
            None
        };
        Ok(LoraLinear::new(w, b))
    }

    fn norm(&mut self, key: &str, cfg: &ModelConfig) -> Result<RmsNorm, LoadError> {
        Ok(RmsNorm::new(
            self.t1(key, cfg.hidden_size)?,
            cfg.rms_norm_eps,
            cfg.family == Family::Gemma2,
        ))
    }
}

/// Loads every tensor the config calls for; errors name the key and both shapes.
/// Tensors the model does not use are an error too (a checkpoint for another architecture
/// loads silently wrong otherwise).
pub fn load_model(
    cfg: &ModelConfig,
    source: &dyn WeightSource,
    device: &Device,
) -> Result<CausalLm, LoadError> {
    let mut l = Loader {
        source,
        device,
        used: BTreeSet::new(),
    };
    let (hs, hd) = (cfg.hidden_size, cfg.head_dim);
    let q_out = cfg.num_attention_heads * hd;
    let kv_out = cfg.num_key_value_heads * hd;
    let gemma = cfg.family == Family::Gemma2;
    let embed_tokens = crate::model::Embedding {
        weight: burn::module::Param::initialized(
            burn::module::ParamId::new(),
            l.t2("model.embed_tokens.weight", cfg.vocab_size, hs)?,
        ),
    };
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let self_attn = Attention {
            q_proj: l.linear(
                &format!("{p}.self_attn.q_proj"),
                hs,
                q_out,
                cfg.attention_bias,
            )?,
            k_proj: l.linear(
                &format!("{p}.self_attn.k_proj"),
                hs,
                kv_out,
                cfg.attention_bias,
            )?,
            v_proj: l.linear(
                &format!("{p}.self_attn.v_proj"),
                hs,
                kv_out,
                cfg.attention_bias,
            )?,
            o_proj: l.linear(&format!("{p}.self_attn.o_proj"), q_out, hs, cfg.o_bias)?,
        };
        let mlp = Mlp {
            gate_proj: l.linear(
                &format!("{p}.mlp.gate_proj"),
                hs,
                cfg.intermediate_size,
                cfg.mlp_bias,
            )?,
            up_proj: l.linear(
                &format!("{p}.mlp.up_proj"),
                hs,
                cfg.intermediate_size,
                cfg.mlp_bias,
            )?,
            down_proj: l.linear(
                &format!("{p}.mlp.down_proj"),
                cfg.intermediate_size,
                hs,
                cfg.mlp_bias,
            )?,
        };
        layers.push(DecoderLayer {
            self_attn,
            mlp,
            input_layernorm: l.norm(&format!("{p}.input_layernorm.weight"), cfg)?,
            post_attention_layernorm: l
                .norm(&format!("{p}.post_attention_layernorm.weight"), cfg)?,
            pre_feedforward_layernorm: if gemma {
                Some(l.norm(&format!("{p}.pre_feedforward_layernorm.weight"), cfg)?)
            } else {
                None
            },
            post_feedforward_layernorm: if gemma {
                Some(l.norm(&format!("{p}.post_feedforward_layernorm.weight"), cfg)?)
            } else {
                None
            },
        });
    }
    let norm = l.norm("model.norm.weight", cfg)?;
    let lm_head = if cfg.tie_word_embeddings {
        // Some exporters write the tied head anyway; it is the embedding.
        l.used.insert("lm_head.weight".to_string());
        None
    } else {
        Some(l.linear("lm_head", hs, cfg.vocab_size, false)?)
    };
    let unused: Vec<String> = source
        .keys()
        .into_iter()
        .filter(|k| !l.used.contains(k) && !ignorable(k))
        .collect();
    if !unused.is_empty() {
        return Err(LoadError::UnexpectedTensors {
            source_name: source.source_name(),
            keys: unused,
            family: format!("{:?}", cfg.family),
        });
    }
    Ok(CausalLm::from_parts(
        DecoderStack {
            embed_tokens,
            layers,
            norm,
        },
        lm_head,
        cfg.clone(),
    ))
}

fn host_of<const D: usize>(t: Tensor<D>) -> HostTensor {
    let shape = t.dims().to_vec();
    let data = t.try_into_vec_as::<f32>().expect("f32 tensor data");
    HostTensor { shape, data }
}

/// The model's weights under their checkpoint keys and in PyTorch orientation, ready for
/// [`crate::weights::write_safetensors`]. LoRA adapters are not included (merge them first to
/// bake them in, or save them separately in PEFT format).
pub fn export_weights(model: &CausalLm) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    let linear = |out: &mut BTreeMap<String, HostTensor>, prefix: String, l: &LoraLinear| {
        out.insert(
            format!("{prefix}.weight"),
            host_of(l.weight.val()).transposed(),
        );
        if let Some(b) = &l.bias {
            out.insert(format!("{prefix}.bias"), host_of(b.val()));
        }
    };
    out.insert(
        "model.embed_tokens.weight".into(),
        host_of(model.model.embed_tokens.weight.val()),
    );
    for (i, layer) in model.model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let a = &layer.self_attn;
        linear(&mut out, format!("{p}.self_attn.q_proj"), &a.q_proj);
        linear(&mut out, format!("{p}.self_attn.k_proj"), &a.k_proj);
        linear(&mut out, format!("{p}.self_attn.v_proj"), &a.v_proj);
        linear(&mut out, format!("{p}.self_attn.o_proj"), &a.o_proj);
        linear(&mut out, format!("{p}.mlp.gate_proj"), &layer.mlp.gate_proj);
        linear(&mut out, format!("{p}.mlp.up_proj"), &layer.mlp.up_proj);
        linear(&mut out, format!("{p}.mlp.down_proj"), &layer.mlp.down_proj);
        out.insert(
            format!("{p}.input_layernorm.weight"),
            host_of(layer.input_layernorm.weight.val()),
        );
        out.insert(
            format!("{p}.post_attention_layernorm.weight"),
            host_of(layer.post_attention_layernorm.weight.val()),
        );
        if let Some(n) = &layer.pre_feedforward_layernorm {
            out.insert(
                format!("{p}.pre_feedforward_layernorm.weight"),
                host_of(n.weight.val()),
            );
        }
        if let Some(n) = &layer.post_feedforward_layernorm {
            out.insert(
                format!("{p}.post_feedforward_layernorm.weight"),
                host_of(n.weight.val()),
            );
        }
    }
    out.insert(
        "model.norm.weight".into(),
        host_of(model.model.norm.weight.val()),
    );
    if let Some(head) = &model.lm_head {
        linear(&mut out, "lm_head".into(), head);
    }
    out
}
