//! Weight sources: a checkpoint seen as a map from Hugging Face keys to f32 host tensors.
//!
//! Safetensors files (single or sharded with `model.safetensors.index.json`) and GGUF files
//! ([`crate::gguf`]) both implement [`WeightSource`]; the model builder asks for tensors by
//! their checkpoint key and checks shapes, so every error names the key and both shapes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use formats::safetensors::Dtype;

use crate::error::LoadError;

pub use formats::HostTensor;

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
        let shards = formats::safetensors::shard_files(&index_path, &text)?;
        let files = shards.into_iter().map(|s| path.join(s)).collect();
        Self::from_files(path.display().to_string(), files)
    }

    fn from_files(name: String, paths: Vec<PathBuf>) -> Result<Self, LoadError> {
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for (i, p) in paths.into_iter().enumerate() {
            let bytes = std::fs::read(&p).map_err(|e| LoadError::io(&p, e))?;
            {
                // Header errors name the tensor at fault (`formats::safetensors`).
                let st = formats::safetensors::deserialize(&bytes).map_err(|m| {
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
            formats::safetensors::deserialize(bytes).map_err(|m| LoadError::format(path, m))?;
        let view = st
            .tensor(key)
            .map_err(|e| LoadError::format(path, e.to_string()))?;
        let raw = view.data();
        let data = formats::safetensors::to_f32(entry.dtype, raw).ok_or_else(|| {
            LoadError::UnsupportedDtype {
                source_name: path.display().to_string(),
                key: key.to_string(),
                dtype: format!("{:?}", entry.dtype),
            }
        })?;
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
/// (`<name>.tmp<pid>`), or `None` for any other file name ([`formats::atomic::temporary_pid`]).
pub fn atomic_temporary_pid(file_name: &str) -> Option<u32> {
    formats::atomic::temporary_pid(file_name)
}

/// Writes a file atomically ([`formats::atomic::write_atomic`]: a temporary sibling
/// `<name>.tmp<pid>` is written, synced and renamed over `path`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    formats::atomic::write_atomic(path, bytes).map_err(LoadError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
