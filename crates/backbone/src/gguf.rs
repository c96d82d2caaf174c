//! GGUF (v2/v3) reading: metadata, tensor directory, dequantisation of F32, F16, BF16, Q8_0,
//! Q4_0 and Q4_1, llama.cpp's tensor names mapped back to Hugging Face keys, and the Q/K row
//! permutation that llama.cpp applies to Llama checkpoints undone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use serde_json::{Value, json};

use crate::config::{Family, ModelConfig};
use crate::error::LoadError;
use crate::weights::{HostTensor, WeightSource};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any integer type.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// As an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// As a float (integers convert).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(f) => Some(*f),
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    /// As an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor types this reader knows by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
    /// Blocks of 32: f16 scale, 32 × i8.
    Q8_0,
    /// Blocks of 32: f16 scale, 16 bytes of 4-bit values offset by 8.
    Q4_0,
    /// Blocks of 32: f16 scale and minimum, 16 bytes of 4-bit values.
    Q4_1,
    /// Any other type (named by its number in errors).
    Other(u32),
}

impl GgmlType {
    fn from_u32(t: u32) -> Self {
        match t {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::Bf16,
            other => Self::Other(other),
        }
    }

    /// Bytes for `n` elements, or None for unsupported types / partial blocks.
    fn byte_len(self, n: usize) -> Option<usize> {
        match self {
            Self::F32 => Some(n * 4),
            Self::F16 | Self::Bf16 => Some(n * 2),
            Self::Q8_0 if n.is_multiple_of(32) => Some(n / 32 * 34),
            Self::Q4_0 if n.is_multiple_of(32) => Some(n / 32 * 18),
            Self::Q4_1 if n.is_multiple_of(32) => Some(n / 32 * 20),
            _ => None,
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in GGUF order (innermost first).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: usize,
}

/// A parsed GGUF file held in memory.
pub struct GgufFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Metadata key/values.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Tensor directory.
    pub tensors: Vec<TensorInfo>,
    data_start: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], LoadError> {
        if self
            .pos
            .checked_add(n)
            .is_none_or(|end| end > self.bytes.len())
        {
            return Err(LoadError::format(
                self.path,
                format!(
                    "truncated GGUF: {what} at byte {} needs {n} bytes, file has {}",
                    self.pos,
                    self.bytes.len()
                ),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    fn len(&mut self, what: &str) -> Result<usize, LoadError> {
        let n = self.u64(what)?;
        // No count can exceed the bytes left: reject absurd lengths before allocating.
        if n as usize > self.bytes.len() {
            return Err(LoadError::format(
                self.path,
                format!("{what}: length {n} exceeds the file size"),
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String, LoadError> {
        let n = self.len(what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| LoadError::format(self.path, format!("{what}: not UTF-8")))
    }
    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<MetaValue, LoadError> {
        Ok(match ty {
            0 => MetaValue::Int(self.take(1, what)?[0] as i64),
            1 => MetaValue::Int(self.take(1, what)?[0] as i8 as i64),
            2 => MetaValue::Int(
                u16::from_le_bytes(self.take(2, what)?.try_into().expect("2")) as i64,
            ),
            3 => MetaValue::Int(
                i16::from_le_bytes(self.take(2, what)?.try_into().expect("2")) as i64,
            ),
            4 => MetaValue::Int(self.u32(what)? as i64),
            5 => MetaValue::Int(self.u32(what)? as i32 as i64),
            6 => MetaValue::Float(
                f32::from_le_bytes(self.take(4, what)?.try_into().expect("4")) as f64,
            ),
            7 => MetaValue::Bool(self.take(1, what)?[0] != 0),
            8 => MetaValue::Str(self.string(what)?),
            9 => {
                if depth > 4 {
                    return Err(LoadError::format(
                        self.path,
                        format!("{what}: arrays nested too deeply"),
                    ));
                }
                let inner = self.u32(what)?;
                let n = self.len(what)?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(inner, what, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::Int(self.u64(what)? as i64),
            11 => MetaValue::Int(self.u64(what)? as i64),
            12 => MetaValue::Float(f64::from_le_bytes(
                self.take(8, what)?.try_into().expect("8"),
            )),
            other => {
                return Err(LoadError::format(
                    self.path,
                    format!("{what}: unknown metadata type {other}"),
                ));
            }
        })
    }
}

impl GgufFile {
    /// Reads and parses a GGUF file.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
        Self::parse(path, bytes)
    }

    /// Parses GGUF bytes (`path` is for messages).
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self, LoadError> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
            path,
        };
        if r.take(4, "magic")? != b"GGUF" {
            return Err(LoadError::format(path, "not a GGUF file (bad magic)"));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(LoadError::format(
                path,
                format!("unsupported GGUF version {version} (2 and 3 are)"),
            ));
        }
        let n_tensors = r.len("tensor count")?;
        let n_kv = r.len("metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&key)?;
            let v = r.value(ty, &key, 0)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16));
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor name #{i}"))?;
            let n_dims = r.u32(&name)? as usize;
            if n_dims == 0 || n_dims > 4 {
                return Err(LoadError::format(
                    path,
                    format!("tensor `{name}`: {n_dims} dimensions"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(r.len(&name)?);
            }
            let ggml_type = GgmlType::from_u32(r.u32(&name)?);
            let offset = r.u64(&name)? as usize;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        // A name given twice would silently shadow one of the two entries.
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, t) in tensors.iter().enumerate() {
            if let Some(first) = seen.insert(t.name.as_str(), i) {
                return Err(LoadError::format(
                    path,
                    format!(
                        "tensor `{}` appears twice in the tensor directory (entries #{first} and #{i})",
                        t.name
                    ),
                ));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_i64() {
                Some(a) if a > 0 && (a as u64).is_power_of_two() => a as usize,
                _ => {
                    return Err(LoadError::format(
                        path,
                        format!("general.alignment {v:?} is not a power of two"),
                    ));
                }
            },
        };
        let data_start = r.pos.div_ceil(alignment) * alignment;
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(LoadError::format(
                    path,
                    format!(
                        "tensor `{}`: offset {} is not aligned to {alignment}",
                        t.name, t.offset
                    ),
                ));
            }
            let n: usize = t.dims.iter().product();
            if let Some(len) = t.ggml_type.byte_len(n) {
                let end = data_start
                    .checked_add(t.offset)
                    .and_then(|s| s.checked_add(len));
                if end.is_none_or(|e| e > bytes.len()) {
                    return Err(LoadError::format(
                        path,
                        format!(
                            "truncated GGUF: tensor `{}` ends past the end of the file ({} bytes)",
                            t.name,
                            bytes.len()
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            metadata,
            tensors,
            data_start,
        })
    }

    /// A metadata value by key.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// Dequantises a tensor by GGUF name; the shape is returned in PyTorch order (outermost first).
    pub fn dequantize(&self, name: &str) -> Result<HostTensor, LoadError> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| LoadError::MissingTensor {
                source_name: self.path.display().to_string(),
                key: name.into(),
            })?;
        let n: usize = t.dims.iter().product();
        let len = t
            .ggml_type
            .byte_len(n)
            .ok_or_else(|| LoadError::UnsupportedDtype {
                source_name: self.path.display().to_string(),
                key: name.to_string(),
                dtype: format!("{:?}", t.ggml_type),
            })?;
        let start = self.data_start + t.offset;
        let raw = &self.bytes[start..start + len];
        let data = dequantize_raw(t.ggml_type, raw, n);
        Ok(HostTensor {
            shape: t.dims.iter().rev().copied().collect(),
            data,
        })
    }
}

fn f16_at(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Dequantises `n` values of a supported type (ggml's reference `dequantize_row_*`).
fn dequantize_raw(ty: GgmlType, raw: &[u8], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        GgmlType::F16 => out.extend(raw.chunks_exact(2).map(f16_at)),
        GgmlType::Bf16 => out.extend(
            raw.chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        GgmlType::Q8_0 => {
            for block in raw.chunks_exact(34) {
                let d = f16_at(&block[..2]);
                out.extend(block[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4_0 => {
            for block in raw.chunks_exact(18) {
                let d = f16_at(&block[..2]);
                let qs = &block[2..];
                // Low nibbles are elements 0..16, high nibbles 16..32.
                out.extend(qs.iter().map(|&q| ((q & 0x0f) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for block in raw.chunks_exact(20) {
                let d = f16_at(&block[..2]);
                let m = f16_at(&block[2..4]);
                let qs = &block[4..];
                out.extend(qs.iter().map(|&q| (q & 0x0f) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Other(_) => unreachable!("byte_len rejects unsupported types"),
    }
    out
}

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
        let config = config_from_metadata(&file).map_err(|e| e.in_file(path))?;
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
        self.file.path.display().to_string()
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

fn meta_f(file: &GgufFile, key: &str) -> Result<f64, LoadError> {
    file.meta(key)
        .and_then(MetaValue::as_f64)
        .ok_or_else(|| LoadError::config(key, "missing or not a number in the GGUF metadata"))
}

/// Builds the HF-style configuration a GGUF's metadata describes.
pub fn config_from_metadata(file: &GgufFile) -> Result<ModelConfig, LoadError> {
    let arch = file
        .meta("general.architecture")
        .and_then(MetaValue::as_str)
        .ok_or_else(|| LoadError::config("general.architecture", "missing"))?
        .to_string();
    let k = |s: &str| format!("{arch}.{s}");
    // Sizes are checked under their GGUF names before anything is derived from them.
    let sized = |key: &str, max: f64| -> Result<usize, LoadError> {
        let x = meta_f(file, key)?;
        if x >= 1.0 && x <= max && x.fract() == 0.0 {
            Ok(x as usize)
        } else {
            Err(LoadError::config(key, format!("{x} is outside 1..={max}")))
        }
    };
    let heads = sized(&k("attention.head_count"), 1024.0)?;
    let hidden = sized(&k("embedding_length"), (1u64 << 17) as f64)?;
    sized(&k("block_count"), 1024.0)?;
    sized(&k("feed_forward_length"), (1u64 << 21) as f64)?;
    let vocab = match file
        .meta("tokenizer.ggml.tokens")
        .and_then(MetaValue::as_array)
    {
        Some(t) => t.len(),
        None => meta_f(file, &k("vocab_size"))? as usize,
    };
    let tied = !file.tensors.iter().any(|t| t.name == "output.weight");
    let mut v = json!({
        "model_type": arch,
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": meta_f(file, &k("feed_forward_length"))? as usize,
        "num_hidden_layers": meta_f(file, &k("block_count"))? as usize,
        "num_attention_heads": heads,
        "num_key_value_heads": file.meta(&k("attention.head_count_kv")).and_then(MetaValue::as_f64).map_or(heads, |x| x as usize),
        "rms_norm_eps": meta_f(file, &k("attention.layer_norm_rms_epsilon"))?,
        "rope_theta": file.meta(&k("rope.freq_base")).and_then(MetaValue::as_f64).unwrap_or(10000.0),
        "max_position_embeddings": file.meta(&k("context_length")).and_then(MetaValue::as_f64).unwrap_or(2048.0) as usize,
        "tie_word_embeddings": tied,
    });
    let o = v.as_object_mut().expect("object");
    if let Some(hd) = file
        .meta(&k("attention.key_length"))
        .and_then(MetaValue::as_f64)
    {
        o.insert("head_dim".into(), (hd as usize).into());
    }
    for (gguf_key, hf_key) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = file.meta(gguf_key).and_then(MetaValue::as_i64) {
            o.insert(hf_key.into(), id.into());
        }
    }
    if arch == "gemma2" {
        let hd = o
            .get("head_dim")
            .and_then(Value::as_u64)
            .unwrap_or((hidden / heads) as u64);
        o.insert("query_pre_attn_scalar".into(), hd.into());
        for (gguf_key, hf_key) in [
            ("attn_logit_softcapping", "attn_logit_softcapping"),
            ("final_logit_softcapping", "final_logit_softcapping"),
            ("attention.sliding_window", "sliding_window"),
        ] {
            if let Some(x) = file.meta(&k(gguf_key)).and_then(MetaValue::as_f64) {
                o.insert(hf_key.into(), x.into());
            }
        }
        if let Some(Value::Number(n)) = o.get("sliding_window").cloned() {
            o.insert(
                "sliding_window".into(),
                (n.as_f64().unwrap_or(0.0) as u64).into(),
            );
        }
    }
    ModelConfig::from_hf_json(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_and_q4_1_blocks_dequantise_by_hand() {
        // Q4_0: d = 0.5; byte 0x9F → low nibble 15 → (15-8)·0.5 = 3.5 at index 0, high 9 → 0.5 at 16.
        let mut b = vec![];
        b.extend(f16::from_f32(0.5).to_le_bytes());
        b.extend([0x9Fu8; 16]);
        let v = dequantize_raw(GgmlType::Q4_0, &b, 32);
        assert_eq!((v[0], v[15], v[16], v[31]), (3.5, 3.5, 0.5, 0.5));
        // Q4_1: d = 2, m = -1; 0x21 → low 1 → 1, high 2 → 3.
        let mut b = vec![];
        b.extend(f16::from_f32(2.0).to_le_bytes());
        b.extend(f16::from_f32(-1.0).to_le_bytes());
        b.extend([0x21u8; 16]);
        let v = dequantize_raw(GgmlType::Q4_1, &b, 32);
        assert_eq!((v[0], v[16]), (1.0, 3.0));
        // Q8_0: d = 0.25, q = -4 → -1.
        let mut b = vec![];
        b.extend(f16::from_f32(0.25).to_le_bytes());
        b.extend([(-4i8) as u8; 32]);
        assert_eq!(dequantize_raw(GgmlType::Q8_0, &b, 32)[7], -1.0);
    }

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

    #[test]
    fn truncated_and_foreign_files_are_clear_errors() {
        let p = Path::new("x.gguf");
        let e = GgufFile::parse(p, b"GGU".to_vec())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("x.gguf") && e.contains("truncated"), "{e}");
        let e = GgufFile::parse(p, b"PK\x03\x04rest-of-zip".to_vec())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bad magic"), "{e}");
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes());
        let e = GgufFile::parse(p, b).err().unwrap().to_string();
        assert!(e.contains("exceeds the file size"), "{e}");
    }

    /// A GGUF v3 file without metadata whose tensor directory holds F32 tensors of 4 elements
    /// with the given names (each 32 bytes apart).
    fn gguf_with_tensors(names: &[&str]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend((names.len() as u64).to_le_bytes());
        b.extend(0u64.to_le_bytes());
        for (i, name) in names.iter().enumerate() {
            b.extend((name.len() as u64).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(1u32.to_le_bytes()); // dimensions
            b.extend(4u64.to_le_bytes());
            b.extend(0u32.to_le_bytes()); // F32
            b.extend((i as u64 * 32).to_le_bytes());
        }
        b.resize(b.len().div_ceil(32) * 32 + names.len() * 32, 0);
        b
    }

    #[test]
    fn a_tensor_name_given_twice_is_an_error_naming_it() {
        let p = Path::new("x.gguf");
        assert!(GgufFile::parse(p, gguf_with_tensors(&["a.weight", "b.weight"])).is_ok());
        let e = GgufFile::parse(p, gguf_with_tensors(&["a.weight", "b.weight", "a.weight"]))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "x.gguf: tensor `a.weight` appears twice in the tensor directory (entries #0 and #2)"
        );
    }
}
