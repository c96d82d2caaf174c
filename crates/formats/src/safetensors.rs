//! Safetensors header validation whose errors name the tensor at fault, and the conversion of
//! a tensor's bytes to f32.
//!
//! The `safetensors` crate rejects a file whose data section does not match its header with
//! messages that name no tensor (`invalid shape, data type, or offset for tensor`, `overflow
//! computing buffer size ...`, `incomplete metadata, file not fully covered`). [`deserialize`]
//! runs the crate's parser and, for those errors, walks the header the way the crate does
//! (tensors in data order) to find the first tensor at fault and say what is wrong with it:
//! its shape and dtype, the bytes they need, its `data_offsets`, the data section's size.
//!
//! Used by the backbone's model weights and by PEFT adapter files (`lora`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use safetensors::{Dtype, SafeTensorError, SafeTensors};

use safetensors::tensor::TensorInfo;

use crate::error::FormatError;

/// Parses a whole safetensors file. On failure the message names the tensor at fault where one
/// is (a cut-off file names the tensor whose data it cuts), followed by the crate's own message.
pub fn deserialize(bytes: &[u8]) -> Result<SafeTensors<'_>, String> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        let unnamed = matches!(
            e,
            SafeTensorError::TensorInvalidInfo
                | SafeTensorError::ValidationOverflow
                | SafeTensorError::MetadataIncompleteBuffer
                | SafeTensorError::MisalignedSlice
        );
        match locate_fault(bytes).filter(|_| unnamed) {
            Some(fault) => format!("{fault} (safetensors: {e})"),
            None => e.to_string(),
        }
    })
}

/// The first tensor, in data order, whose header entry does not fit the file, and why; or the
/// bytes left over after the last tensor. `None` when the header itself cannot be read (the
/// crate's message says why) or nothing is wrong with the tensors.
pub fn locate_fault(bytes: &[u8]) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let data_len = bytes.len() - 8 - n;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut tensors: Vec<(String, TensorInfo)> = Vec::with_capacity(map.len());
    for (name, v) in map {
        if name != "__metadata__" {
            tensors.push((name, serde_json::from_value(v).ok()?));
        }
    }
    tensors.sort_by(|a, b| {
        a.1.data_offsets
            .cmp(&b.1.data_offsets)
            .then_with(|| a.0.cmp(&b.0))
    });
    let mut end = 0usize;
    for (name, info) in &tensors {
        let (s, e) = info.data_offsets;
        let (dtype, shape) = (info.dtype, &info.shape);
        if s != end || e < s {
            return Some(format!(
                "tensor `{name}`: data_offsets [{s}, {e}] do not start where the previous tensor's data ends (byte {end})"
            ));
        }
        let bits = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|count| count.checked_mul(dtype.bitsize()));
        let Some(bits) = bits else {
            return Some(format!(
                "tensor `{name}`: shape {shape:?} of {dtype:?} overflows the byte count"
            ));
        };
        if !bits.is_multiple_of(8) {
            return Some(format!(
                "tensor `{name}`: shape {shape:?} of {dtype:?} is not a whole number of bytes"
            ));
        }
        if e - s != bits / 8 {
            return Some(format!(
                "tensor `{name}`: shape {shape:?} of {dtype:?} needs {} bytes, its data_offsets [{s}, {e}] span {}",
                bits / 8,
                e - s
            ));
        }
        if e > data_len {
            return Some(format!(
                "tensor `{name}`: data_offsets [{s}, {e}] run past the end of the data section ({data_len} bytes): \
                 the file is truncated"
            ));
        }
        end = e;
    }
    match tensors.last() {
        Some((last, _)) if end < data_len => Some(format!(
            "{} bytes follow the data of the last tensor `{last}`",
            data_len - end
        )),
        _ => None,
    }
}

/// Converts a tensor's little-endian bytes to f32: F32, F16, BF16 and F64 (rounded), `None` for
/// any other dtype. Trailing bytes that do not make a whole element are ignored (a header that
/// passed [`deserialize`] has none).
pub fn to_f32(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

/// `model.safetensors.index.json` of a sharded checkpoint: the shard files its `weight_map`
/// names, in order, each once; errors name the index file.
pub fn shard_files(index_path: &Path, text: &str) -> Result<Vec<String>, FormatError> {
    let index: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| FormatError::format(index_path, format!("invalid JSON: {e}")))?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| FormatError::format(index_path, "no `weight_map` object"))?;
    let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    if shards.is_empty() {
        return Err(FormatError::format(
            index_path,
            "`weight_map` names no shard",
        ));
    }
    Ok(shards.into_iter().map(str::to_string).collect())
}

/// The tensors of a valid file by name: dtype and shape (PyTorch order).
pub fn tensor_table(st: &SafeTensors<'_>) -> BTreeMap<String, (Dtype, Vec<usize>)> {
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_convert_to_f32_by_dtype() {
        let f16 = half::f16::from_f32(-1.5).to_le_bytes();
        assert_eq!(to_f32(Dtype::F16, &f16), Some(vec![-1.5]));
        let bf16 = half::bf16::from_f32(0.25).to_le_bytes();
        assert_eq!(to_f32(Dtype::BF16, &bf16), Some(vec![0.25]));
        assert_eq!(to_f32(Dtype::F64, &2.5f64.to_le_bytes()), Some(vec![2.5]));
        assert_eq!(to_f32(Dtype::I32, &[0; 4]), None);
    }

    #[test]
    fn a_shard_index_names_each_shard_once() {
        let p = Path::new("m/model.safetensors.index.json");
        let text =
            r#"{"weight_map": {"a": "2.safetensors", "b": "1.safetensors", "c": "2.safetensors"}}"#;
        assert_eq!(
            shard_files(p, text).unwrap(),
            ["1.safetensors", "2.safetensors"]
        );
        let e = shard_files(p, r#"{"weight_map": {}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "m/model.safetensors.index.json: `weight_map` names no shard"
        );
    }

    #[test]
    fn a_cut_off_file_names_the_tensor_whose_data_it_cuts() {
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 8]);
        assert!(deserialize(&bytes).is_ok());
        let e = deserialize(&bytes[..bytes.len() - 3]).err().unwrap();
        assert!(
            e.starts_with(
                "tensor `a`: data_offsets [0, 8] run past the end of the data section (5 bytes)"
            ),
            "{e}"
        );
    }
}
