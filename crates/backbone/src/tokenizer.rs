//! Tokenizers: a `tokenizer.json` through the `tokenizers` crate, or one rebuilt from a GGUF's
//! `tokenizer.ggml.*` metadata (byte-level BPE, as llama.cpp's `gpt2` tokenizer model).

use std::path::Path;

use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::error::LoadError;
use crate::gguf::GgufFile;

/// A loaded tokenizer with the ids a model needs for chat formatting and stopping.
pub struct TextTokenizer {
    /// The `tokenizers` tokenizer.
    pub inner: Tokenizer,
    /// Beginning-of-sequence id, if the model uses one.
    pub bos_id: Option<u32>,
    /// End-of-sequence id.
    pub eos_id: Option<u32>,
    /// The chat template string shipped with the model, if any.
    pub chat_template: Option<String>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (and `tokenizer_config.json` beside it for the chat template).
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let inner = Tokenizer::from_file(path).map_err(|e| LoadError::Tokenizer {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        let cfg_path = path.with_file_name("tokenizer_config.json");
        let chat_template = std::fs::read_to_string(&cfg_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| {
                v.get("chat_template")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        Ok(Self {
            inner,
            bos_id: None,
            eos_id: None,
            chat_template,
        })
    }

    /// Rebuilds the tokenizer stored in a GGUF's metadata.
    pub fn from_gguf(file: &GgufFile, origin: &str) -> Result<Self, LoadError> {
        let err = |m: String| LoadError::Tokenizer {
            origin: origin.to_string(),
            message: m,
        };
        let meta = file.tokenizer_metadata().map_err(err)?;
        let (tokens, merges, types, pre) = (&meta.tokens, &meta.merges, &meta.types, meta.pre);
        let vocab: serde_json::Map<String, Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), json!(i)))
            .collect();
        // Control (3) and user-defined (4) tokens match as whole strings, never split by BPE.
        let added: Vec<Value> = tokens
            .iter()
            .zip(types)
            .enumerate()
            .filter(|(_, (_, ty))| **ty == 3 || **ty == 4)
            .map(|(i, (t, ty))| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": *ty == 3})
            })
            .collect();
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        // llama.cpp's pre-tokenizer names; SmolLM's splits digits one by one before byte-level BPE.
        let pre_tokenizer = match pre {
            "smollm" | "starcoder" | "refact" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level]}),
            "gpt2" | "default" => byte_level.clone(),
            "llama-bpe" | "llama3" | "qwen2" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
            other => return Err(err(format!("pre-tokenizer {other:?} is not supported"))),
        };
        let spec = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": merges},
        });
        let inner: Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|e: tokenizers::Error| err(e.to_string()))?;
        Ok(Self {
            inner,
            bos_id: meta.bos_id,
            eos_id: meta.eos_id,
            chat_template: meta.chat_template.map(str::to_string),
        })
    }

    /// Token ids of a text, without adding special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LoadError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| LoadError::Tokenizer {
                origin: "encode".into(),
                message: e.to_string(),
            })
    }

    /// Text of token ids (special tokens kept, so chat markers stay visible).
    pub fn decode(&self, ids: &[u32]) -> Result<String, LoadError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| LoadError::Tokenizer {
                origin: "decode".into(),
                message: e.to_string(),
            })
    }

    /// The id of a token string, if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// The Llama-3 / Qwen2 pre-tokenization pattern.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
