//! Weight sources: a checkpoint seen as a map from Hugging Face keys to f32 host tensors.
//!
//! Safetensors files (single or sharded with `model.safetensors.index.json`) and GGUF files
//! ([`crate::gguf`]) both implement [`WeightSource`]; the model builder asks for tensors by
//! their checkpoint key and checks shapes, so every error names the key and both shapes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::Dtype;

use crate::error::LoadError;

/// A tensor in host memory, row-major, already converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first (PyTorch order).
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Transposes a 2-D tensor.
    pub fn transposed(&self) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor {
            shape: vec![c, r],
            data: out,
        }
    }
}

/// Anything that serves checkpoint tensors by key.
pub trait WeightSource {
    /// A name for error messages (the file or directory).
    fn source_name(&self) -> String;
    /// All keys present.
    fn keys(&self) -> Vec<String>;
    /// The shape of a tensor without converting it.
    fn shape(&self, key: &str) -> Option<Vec<usize>>;
    /// Reads and converts one tensor to f32.
    fn tensor(&self, key: &str) -> Result<HostTensor, LoadError>;
}

/// One or more safetensors files held in memory.
pub struct SafetensorsSource {
    name: String,
    files: Vec<(PathBuf, Vec<u8>)>,
    /// key → (file index, dtype, shape, byte range within the file's data section)
    index: BTreeMap<String, Entry>,
}

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl SafetensorsSource {
    /// Opens a model directory: `model.safetensors`, or the shards named by
    /// `model.safetensors.index.json`; a path to a `.safetensors` file opens just that file.
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        if path.is_file() {
            return Self::from_files(path.display().to_string(), vec![path.to_path_buf()]);
        }
        let single = path.join("model.safetensors");
        if single.is_file() {
            return Self::from_files(path.display().to_string(), vec![single]);
        }
        let index_path = path.join("model.safetensors.index.json");
        let text =
            std::fs::read_to_string(&index_path).map_err(|e| LoadError::io(&index_path, e))?;
        let index: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LoadError::format(&index_path, format!("invalid JSON: {e}")))?;
        let map = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LoadError::format(&index_path, "no `weight_map` object"))?;
        let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        if shards.is_empty() {
            return Err(LoadError::format(
                &index_path,
                "`weight_map` names no shard",
            ));
        }
        let files = shards.into_iter().map(|s| path.join(s)).collect();
        Self::from_files(path.display().to_string(), files)
    }

    fn from_files(name: String, paths: Vec<PathBuf>) -> Result<Self, LoadError> {
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for (i, p) in paths.into_iter().enumerate() {
            let bytes = std::fs::read(&p).map_err(|e| LoadError::io(&p, e))?;
            {
                // Header errors name the tensor at fault (`lora::safetensors_check`).
                let st = lora::safetensors_check::deserialize(&bytes).map_err(|m| {
                    LoadError::format(&p, format!("not a valid safetensors file: {m}"))
                })?;
                for (key, view) in st.tensors() {
                    if index.contains_key(&key) {
                        return Err(LoadError::format(
                            &p,
                            format!("tensor `{key}` appears in two shards"),
                        ));
                    }
                    index.insert(
                        key,
                        Entry {
                            file: i,
                            dtype: view.dtype(),
                            shape: view.shape().to_vec(),
                        },
                    );
                }
            }
            files.push((p, bytes));
        }
        Ok(Self { name, files, index })
    }
}

impl WeightSource for SafetensorsSource {
    fn source_name(&self) -> String {
        self.name.clone()
    }

    fn keys(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }

    fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.index.get(key).map(|e| e.shape.clone())
    }

    fn tensor(&self, key: &str) -> Result<HostTensor, LoadError> {
        let entry = self
            .index
            .get(key)
            .ok_or_else(|| LoadError::MissingTensor {
                source_name: self.name.clone(),
                key: key.to_string(),
            })?;
        let (path, bytes) = &self.files[entry.file];
        let st =
            lora::safetensors_check::deserialize(bytes).map_err(|m| LoadError::format(path, m))?;
        let view = st
            .tensor(key)
            .map_err(|e| LoadError::format(path, e.to_string()))?;
        let raw = view.data();
        let data: Vec<f32> = match entry.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            other => {
                return Err(LoadError::UnsupportedDtype {
                    source_name: path.display().to_string(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(HostTensor {
            shape: entry.shape.clone(),
            data,
        })
    }
}

/// Writes f32 tensors to one safetensors file, atomically (temporary file, then rename).
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<(), LoadError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, s)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .map_err(|e| LoadError::format(path, format!("tensor `{k}`: {e}")))?;
            Ok((k.clone(), view))
        })
        .collect::<Result<_, LoadError>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let out = safetensors::serialize(views, Some(meta))
        .map_err(|e| LoadError::format(path, e.to_string()))?;
    write_atomic(path, &out)
}

/// The process id in the name of a temporary that [`write_atomic`] writes
/// (`<name>.tmp<pid>`), or `None` for any other file name. A process that finds such a file of
/// a dead pid may remove it: it was never renamed into place.
pub fn atomic_temporary_pid(file_name: &str) -> Option<u32> {
    file_name
        .rsplit_once(".tmp")
        .and_then(|(_, pid)| pid.parse().ok())
}

/// The temporary sibling [`write_atomic`] writes before the rename: `<name>.tmp<pid>`, as
/// [`atomic_temporary_pid`] reads it back.
fn atomic_temporary(path: &Path) -> PathBuf {
    path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ))
}

/// Writes a file atomically: a temporary sibling is written, synced and renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    use std::io::Write;
    let tmp = atomic_temporary(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| LoadError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| LoadError::io(&tmp, e))?;
        f.sync_all().map_err(|e| LoadError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| LoadError::io(path, e))
    })();
    if result.is_err() {
        // A full disk or a failed rename leaves the old file and no stray temporary.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_of_an_atomic_temporary_is_read_back_from_its_name() {
        for name in ["run.json", "LATEST", "trainable.safetensors", "a.tar.gz"] {
            let tmp = atomic_temporary(Path::new("/x").join(name).as_path());
            let tmp = tmp.file_name().unwrap().to_str().unwrap();
            assert!(tmp.starts_with(name.split('.').next().unwrap()), "{tmp}");
            assert_eq!(atomic_temporary_pid(tmp), Some(std::process::id()), "{tmp}");
        }
        for other in ["run.json", "notes.tmp", "a.tmpx1", "log.jsonl"] {
            assert_eq!(atomic_temporary_pid(other), None, "{other}");
        }
    }

    #[test]
    fn written_tensors_read_back_and_truncation_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let mut map = BTreeMap::new();
        map.insert(
            "a.weight".to_string(),
            HostTensor {
                shape: vec![2, 3],
                data: vec![1., 2., 3., 4., 5., 6.],
            },
        );
        write_safetensors(&path, &map).unwrap();
        let src = SafetensorsSource::open(&path).unwrap();
        assert_eq!(src.tensor("a.weight").unwrap(), map["a.weight"]);
        let err = src.tensor("b").unwrap_err().to_string();
        assert!(err.contains("missing tensor `b`"), "{err}");

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = SafetensorsSource::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("w.safetensors") && err.contains("not a valid safetensors"),
            "{err}"
        );
        // The tensor whose data is cut short is named.
        assert!(
            err.contains("tensor `a.weight`") && err.contains("truncated"),
            "{err}"
        );
    }

    /// A safetensors file from a JSON header (space-padded to 8 bytes) and a data section.
    fn st_file(dir: &Path, header: &str, data_len: usize) -> PathBuf {
        let mut h = header.as_bytes().to_vec();
        h.resize(h.len().div_ceil(8) * 8, b' ');
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend(h);
        bytes.resize(bytes.len() + data_len, 0);
        let path = dir.join("h.safetensors");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn header_errors_name_the_tensor_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let open = |header: &str, data_len: usize| {
            SafetensorsSource::open(&st_file(dir.path(), header, data_len))
                .err()
                .unwrap()
                .to_string()
        };
        let good_a = r#""a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}"#;
        // `b`'s range holds 24 bytes where [4] of F32 needs 16.
        let e = open(
            &format!(r#"{{{good_a},"b":{{"dtype":"F32","shape":[4],"data_offsets":[8,32]}}}}"#),
            32,
        );
        assert!(
            e.contains("h.safetensors") && e.contains("tensor `b`") && e.contains("needs 16 bytes"),
            "{e}"
        );
        // The element count of `b` overflows.
        let huge = 1u64 << 40;
        let e = open(
            &format!(
                r#"{{{good_a},"b":{{"dtype":"F16","shape":[{huge},{huge}],"data_offsets":[8,16]}}}}"#
            ),
            16,
        );
        assert!(e.contains("tensor `b`") && e.contains("overflows"), "{e}");
        // `b` ends 4 bytes past the data section.
        let e = open(
            &format!(r#"{{{good_a},"b":{{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}}}"#),
            12,
        );
        assert!(e.contains("tensor `b`") && e.contains("truncated"), "{e}");
        // Bytes after the last tensor.
        let e = open(&format!("{{{good_a}}}"), 12);
        assert!(
            e.contains("4 bytes follow the data of the last tensor `a`"),
            "{e}"
        );
        // A header that is not JSON keeps the crate's own message.
        let e = open("{not json}", 0);
        assert!(
            e.contains("h.safetensors") && e.contains("invalid JSON in header"),
            "{e}"
        );
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let t = HostTensor {
            shape: vec![2, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        assert_eq!(
            t.transposed(),
            HostTensor {
                shape: vec![3, 2],
                data: vec![1., 4., 2., 5., 3., 6.]
            }
        );
    }
}
