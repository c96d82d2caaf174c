//! The model configuration, read from a Hugging Face `config.json` (or built from GGUF metadata).
//!
//! The types live in the Burn-free `formats` crate ([`formats::config`]): [`HfConfig`] mirrors
//! the file's keys, [`ModelConfig::from_hf`] checks the values a model cannot run without and
//! names the offending field on error.

pub use formats::config::{Family, HfConfig, ModelConfig, RopeParameters, RopeScaling, TokenIds};
