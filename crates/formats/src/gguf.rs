//! GGUF (v2/v3) reading: metadata, tensor directory, dequantisation of F32, F16, BF16, Q8_0,
//! Q4_0 and Q4_1, the model configuration the metadata describes, and the tokenizer metadata
//! (`tokenizer.ggml.*`) checked entry by entry.
//!
//! Everything is validated before it is used: counts and lengths against the bytes left, every
//! tensor's data range against the file, so [`GgufFile::dequantize`] cannot read out of bounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::HostTensor;
use crate::config::{HfConfig, ModelConfig, TokenIds};
use crate::error::FormatError;

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
            // Checked: a count near usize::MAX (it fits the file's bounds only as a product
            // check, below) must be "past the end of the file", not an overflow.
            Self::F32 => n.checked_mul(4),
            Self::F16 | Self::Bf16 => n.checked_mul(2),
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
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], FormatError> {
        if self
            .pos
            .checked_add(n)
            .is_none_or(|end| end > self.bytes.len())
        {
            return Err(FormatError::format(
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
    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    fn len(&mut self, what: &str) -> Result<usize, FormatError> {
        let n = self.u64(what)?;
        // No count can exceed the bytes left: reject absurd lengths before allocating.
        if n as usize > self.bytes.len() {
            return Err(FormatError::format(
                self.path,
                format!("{what}: length {n} exceeds the file size"),
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        let n = self.len(what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| FormatError::format(self.path, format!("{what}: not UTF-8")))
    }
    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<MetaValue, FormatError> {
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
                    return Err(FormatError::format(
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
                return Err(FormatError::format(
                    self.path,
                    format!("{what}: unknown metadata type {other}"),
                ));
            }
        })
    }
}

impl GgufFile {
    /// Reads and parses a GGUF file.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let bytes = std::fs::read(path).map_err(|e| FormatError::io(path, e))?;
        Self::parse(path, bytes)
    }

    /// Parses GGUF bytes (`path` is for messages).
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self, FormatError> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
            path,
        };
        if r.take(4, "magic")? != b"GGUF" {
            return Err(FormatError::format(path, "not a GGUF file (bad magic)"));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(FormatError::format(
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
                return Err(FormatError::format(
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
                return Err(FormatError::format(
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
                    return Err(FormatError::format(
                        path,
                        format!("general.alignment {v:?} is not a power of two"),
                    ));
                }
            },
        };
        let data_start = r.pos.div_ceil(alignment) * alignment;
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(FormatError::format(
                    path,
                    format!(
                        "tensor `{}`: offset {} is not aligned to {alignment}",
                        t.name, t.offset
                    ),
                ));
            }
            // Each dimension is at most the file size, but four of them multiply past usize.
            let n = t
                .dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| {
                    FormatError::format(
                        path,
                        format!(
                            "tensor `{}`: dimensions {:?} overflow the element count",
                            t.name, t.dims
                        ),
                    )
                })?;
            if let Some(len) = t.ggml_type.byte_len(n) {
                let end = data_start
                    .checked_add(t.offset)
                    .and_then(|s| s.checked_add(len));
                if end.is_none_or(|e| e > bytes.len()) {
                    return Err(FormatError::format(
                        path,
                        format!(
                            "truncated GGUF: tensor `{}` ends past the end of the file ({} bytes)",
                            t.name,
                            bytes.len()
                        ),
                    ));
                }
            } else if matches!(t.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16) {
                // Its byte count overflows usize: it cannot be in the file either.
                return Err(FormatError::format(
                    path,
                    format!(
                        "truncated GGUF: tensor `{}` of {n} elements ends past the end of the file ({} bytes)",
                        t.name,
                        bytes.len()
                    ),
                ));
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

    /// The file this was read from (as given to [`GgufFile::open`] or [`GgufFile::parse`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value by key.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// Dequantises a tensor by GGUF name; the shape is returned in PyTorch order (outermost first).
    pub fn dequantize(&self, name: &str) -> Result<HostTensor, FormatError> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| FormatError::MissingTensor {
                source_name: self.path.display().to_string(),
                key: name.into(),
            })?;
        let n: usize = t.dims.iter().product();
        let len = t
            .ggml_type
            .byte_len(n)
            .ok_or_else(|| FormatError::UnsupportedDtype {
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

fn meta_f(file: &GgufFile, key: &str) -> Result<f64, FormatError> {
    file.meta(key)
        .and_then(MetaValue::as_f64)
        .ok_or_else(|| FormatError::config(key, "missing or not a number in the GGUF metadata"))
}

/// Builds the configuration a GGUF's metadata describes, under Hugging Face names, then checks
/// it as a `config.json` would be ([`ModelConfig::from_hf`]).
pub fn config_from_metadata(file: &GgufFile) -> Result<ModelConfig, FormatError> {
    let arch = file
        .meta("general.architecture")
        .and_then(MetaValue::as_str)
        .ok_or_else(|| FormatError::config("general.architecture", "missing"))?
        .to_string();
    let k = |s: &str| format!("{arch}.{s}");
    // Sizes are checked under their GGUF names before anything is derived from them.
    let sized = |key: &str, max: f64| -> Result<usize, FormatError> {
        let x = meta_f(file, key)?;
        if x >= 1.0 && x <= max && x.fract() == 0.0 {
            Ok(x as usize)
        } else {
            Err(FormatError::config(
                key,
                format!("{x} is outside 1..={max}"),
            ))
        }
    };
    let heads = sized(&k("attention.head_count"), 1024.0)?;
    let hidden = sized(&k("embedding_length"), (1u64 << 17) as f64)?;
    let layers = sized(&k("block_count"), 1024.0)?;
    let ffn = sized(&k("feed_forward_length"), (1u64 << 21) as f64)?;
    let vocab = match file
        .meta("tokenizer.ggml.tokens")
        .and_then(MetaValue::as_array)
    {
        Some(t) => t.len(),
        None => meta_f(file, &k("vocab_size"))? as usize,
    };
    let opt_f = |key: &str| file.meta(key).and_then(MetaValue::as_f64);
    // A token id outside u32 is an error naming its GGUF key.
    let token_id = |key: &str| -> Result<Option<u32>, FormatError> {
        match file.meta(key).and_then(MetaValue::as_i64) {
            None => Ok(None),
            Some(id) => u32::try_from(id)
                .map(Some)
                .map_err(|_| FormatError::config(key, format!("{id} is not a token id"))),
        }
    };
    let head_dim = opt_f(&k("attention.key_length")).map(|hd| hd as usize);
    let mut c = HfConfig {
        model_type: Some(arch.clone()),
        vocab_size: Some(vocab),
        hidden_size: Some(hidden),
        intermediate_size: Some(ffn),
        num_hidden_layers: Some(layers),
        num_attention_heads: Some(heads),
        num_key_value_heads: Some(
            opt_f(&k("attention.head_count_kv")).map_or(heads, |x| x as usize),
        ),
        head_dim,
        rms_norm_eps: Some(meta_f(file, &k("attention.layer_norm_rms_epsilon"))?),
        rope_theta: Some(opt_f(&k("rope.freq_base")).unwrap_or(10000.0)),
        max_position_embeddings: Some(opt_f(&k("context_length")).unwrap_or(2048.0) as usize),
        tie_word_embeddings: Some(!file.tensors.iter().any(|t| t.name == "output.weight")),
        bos_token_id: token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: token_id("tokenizer.ggml.eos_token_id")?.map(TokenIds::One),
        pad_token_id: token_id("tokenizer.ggml.padding_token_id")?,
        ..HfConfig::default()
    };
    if arch == "gemma2" {
        c.query_pre_attn_scalar = Some(head_dim.unwrap_or(hidden / heads) as f64);
        c.attn_logit_softcapping = opt_f(&k("attn_logit_softcapping"));
        c.final_logit_softcapping = opt_f(&k("final_logit_softcapping"));
        c.sliding_window = opt_f(&k("attention.sliding_window")).map(|x| x as usize);
    }
    ModelConfig::from_hf(&c)
}

/// The `tokenizer.ggml.*` metadata of a byte-level BPE (`gpt2`) tokenizer, checked entry by
/// entry: what a tokenizer library needs to rebuild it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerMetadata<'a> {
    /// `tokenizer.ggml.tokens`, by id.
    pub tokens: Vec<&'a str>,
    /// `tokenizer.ggml.merges`, each two tokens separated by one space.
    pub merges: Vec<&'a str>,
    /// `tokenizer.ggml.token_type` per token (1 normal, 3 control, 4 user-defined); 1 when absent.
    pub types: Vec<i64>,
    /// `tokenizer.ggml.pre`, the pre-tokenizer's llama.cpp name (`default` when absent).
    pub pre: &'a str,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<&'a str>,
}

impl GgufFile {
    /// The tokenizer metadata; an error names the key (and the entry) at fault.
    pub fn tokenizer_metadata(&self) -> Result<TokenizerMetadata<'_>, String> {
        let model = self
            .meta("tokenizer.ggml.model")
            .and_then(MetaValue::as_str)
            .unwrap_or("");
        if model != "gpt2" {
            return Err(format!(
                "tokenizer model {model:?} is not supported (byte-level BPE `gpt2` is)"
            ));
        }
        let tokens = string_array(self, "tokenizer.ggml.tokens")
            .ok_or_else(|| "no tokenizer.ggml.tokens".to_string())??;
        let merges = string_array(self, "tokenizer.ggml.merges")
            .transpose()?
            .unwrap_or_default();
        check_merges(&tokens, &merges)?;
        let types: Vec<i64> = match self
            .meta("tokenizer.ggml.token_type")
            .and_then(MetaValue::as_array)
        {
            Some(t) => t.iter().map(|x| x.as_i64().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        let id = |k: &str| self.meta(k).and_then(MetaValue::as_i64).map(|x| x as u32);
        Ok(TokenizerMetadata {
            tokens,
            merges,
            types,
            pre: self
                .meta("tokenizer.ggml.pre")
                .and_then(MetaValue::as_str)
                .unwrap_or("default"),
            bos_id: id("tokenizer.ggml.bos_token_id"),
            eos_id: id("tokenizer.ggml.eos_token_id"),
            chat_template: self
                .meta("tokenizer.chat_template")
                .and_then(MetaValue::as_str),
        })
    }
}

/// The metadata value at `key` as an array of strings: `None` when absent, an error naming the
/// key (and the entry) when it is not an array or an entry is not a string.
fn string_array<'a>(file: &'a GgufFile, key: &str) -> Option<Result<Vec<&'a str>, String>> {
    let v = file.meta(key)?;
    let Some(items) = v.as_array() else {
        return Some(Err(format!(
            "{key} is {}, not an array of strings",
            type_name(v)
        )));
    };
    Some(
        items
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_str()
                    .ok_or_else(|| format!("{key} entry #{i} is {}, not a string", type_name(t)))
            })
            .collect(),
    )
}

fn type_name(v: &MetaValue) -> &'static str {
    match v {
        MetaValue::Int(_) => "an integer",
        MetaValue::Float(_) => "a float",
        MetaValue::Bool(_) => "a bool",
        MetaValue::Str(_) => "a string",
        MetaValue::Array(_) => "an array",
    }
}

/// Checks `tokenizer.ggml.merges` as the BPE model reads it, so that a bad entry is named by
/// its key and index (the `tokenizers` crate would speak of a merges "text file" and a column
/// of a JSON document the user never wrote): every entry is two tokens separated by one
/// space, and both tokens and their concatenation are in `tokenizer.ggml.tokens`.
pub fn check_merges(tokens: &[&str], merges: &[&str]) -> Result<(), String> {
    const KEY: &str = "tokenizer.ggml.merges";
    for (i, m) in merges.iter().enumerate() {
        if m.split(' ').count() != 2 {
            return Err(format!(
                "{KEY} entry #{i} {m:?} is not two tokens separated by one space"
            ));
        }
    }
    let vocab: std::collections::HashSet<&str> = tokens.iter().copied().collect();
    for (i, m) in merges.iter().enumerate() {
        let (a, b) = m.split_once(' ').expect("checked above");
        let joined = format!("{a}{b}");
        if let Some(t) = [a, b, joined.as_str()]
            .into_iter()
            .find(|t| !vocab.contains(t))
        {
            return Err(format!(
                "{KEY} entry #{i} {m:?}: {t:?} is not in tokenizer.ggml.tokens"
            ));
        }
    }
    Ok(())
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
    #[test]
    fn merges_are_checked_by_key_and_entry() {
        let tokens = ["a", "b", "ab", "c"];
        assert_eq!(
            check_merges(&tokens, &["a b", "ab c"]),
            Err(
                "tokenizer.ggml.merges entry #1 \"ab c\": \"abc\" is not in tokenizer.ggml.tokens"
                    .into()
            )
        );
        assert_eq!(check_merges(&tokens, &["a b"]), Ok(()));
        // Entries that are not pairs are found before vocabulary problems.
        assert_eq!(
            check_merges(&tokens, &["a c", "abc"]),
            Err(
                "tokenizer.ggml.merges entry #1 \"abc\" is not two tokens separated by one space"
                    .into()
            )
        );
        assert_eq!(
            check_merges(&tokens, &["a  b"]).unwrap_err(),
            "tokenizer.ggml.merges entry #0 \"a  b\" is not two tokens separated by one space"
        );
    }

    #[test]
    fn dimensions_whose_product_overflows_are_an_error_naming_the_tensor() {
        // Four dimensions of 70000, each within the file's 70 KB, multiply past 2^64.
        let n = 70_000u64;
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend(4u32.to_le_bytes());
        (0..4).for_each(|_| b.extend(n.to_le_bytes()));
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(0u64.to_le_bytes());
        b.resize(b.len() + n as usize, 0);
        let e = GgufFile::parse(Path::new("x.gguf"), b)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "x.gguf: tensor `t`: dimensions [70000, 70000, 70000, 70000] overflow the element count"
        );
    }
}
