//! Safetensors parsing whose errors name the tensor at fault.
//!
//! The `safetensors` crate rejects a file whose data section does not match its header with
//! messages that name no tensor (`invalid shape, data type, or offset for tensor`, `overflow
//! computing buffer size ...`, `incomplete metadata, file not fully covered`). [`deserialize`]
//! runs the crate's parser and, for those errors, walks the header the way the crate does
//! (tensors in data order) to find the first tensor at fault and say what is wrong with it:
//! its shape and dtype, the bytes they need, its `data_offsets`, the data section's size.
//!
//! Used by PEFT adapter files here and by the backbone's model weights.

use safetensors::tensor::TensorInfo;
use safetensors::{SafeTensorError, SafeTensors};

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
