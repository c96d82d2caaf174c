//! PEFT's `adapter_config.json`: the fields of its `LoraConfig` that a LoRA loader needs, and
//! the checks that refuse what this workspace cannot apply (DoRA, biases, Conv1D weights, ...).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FormatError;

/// The file name PEFT gives the config in an adapter directory.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// The fields of PEFT's `LoraConfig` that this crate reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftConfig {
    /// Always `"LORA"`.
    pub peft_type: String,
    /// `"CAUSAL_LM"`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Default rank.
    pub r: usize,
    /// Default alpha.
    pub lora_alpha: f64,
    /// Dropout on the adapter input.
    #[serde(default)]
    pub lora_dropout: f64,
    /// rsLoRA scaling `alpha / sqrt(r)`.
    #[serde(default)]
    pub use_rslora: bool,
    /// `true` (Kaiming-uniform A) or `"gaussian"`.
    #[serde(default = "default_init")]
    pub init_lora_weights: Value,
    /// Module names or full paths (PEFT's suffix rule), or one regex string.
    pub target_modules: Value,
    /// Per-module rank overrides (module path or suffix → r).
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alpha overrides.
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, f64>,
    /// Only `"none"` is supported.
    #[serde(default = "default_bias")]
    pub bias: String,
    /// Only `false` is supported (GPT-2 style Conv1D weights).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Only `false` is supported.
    #[serde(default)]
    pub use_dora: bool,
    /// Only empty is supported.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// The base model (informational).
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// PEFT writes it; kept for round trips.
    #[serde(default)]
    pub inference_mode: bool,
}

fn default_init() -> Value {
    Value::Bool(true)
}

fn default_bias() -> String {
    "none".to_string()
}

impl PeftConfig {
    /// Reads `<dir>/adapter_config.json` ([`PeftConfig::from_json_str`]).
    pub fn from_dir(dir: &Path) -> Result<Self, FormatError> {
        let path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| FormatError::io(&path, e))?;
        Self::from_json_str(&text, &path)
    }

    /// Parses and checks an adapter config (`path` names it in errors): malformed JSON, a
    /// missing or mistyped field and an unsupported option are errors naming the file and the
    /// field.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, FormatError> {
        let config: PeftConfig =
            serde_json::from_str(text).map_err(|e| FormatError::format(path, e.to_string()))?;
        let unsupported = |what: &str| {
            Err(FormatError::format(
                path,
                format!("{what} is not supported"),
            ))
        };
        if config.peft_type != "LORA" {
            return unsupported(&format!("peft_type {:?}", config.peft_type));
        }
        if config.use_dora {
            return unsupported("use_dora = true");
        }
        if config.fan_in_fan_out {
            return unsupported("fan_in_fan_out = true");
        }
        if config.bias != "none" {
            return unsupported(&format!("bias = {:?}", config.bias));
        }
        if config
            .modules_to_save
            .as_ref()
            .is_some_and(|m| !m.is_empty())
        {
            return unsupported("modules_to_save");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}"#;

    fn read(text: &str) -> Result<PeftConfig, String> {
        PeftConfig::from_json_str(text, Path::new("a/adapter_config.json"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn peft_defaults_fill_the_fields_a_minimal_file_leaves_out() {
        let c = read(GOOD).unwrap();
        assert_eq!((c.r, c.lora_alpha, c.lora_dropout), (8, 16.0, 0.0));
        assert_eq!(c.init_lora_weights, Value::Bool(true));
        assert_eq!(c.bias, "none");
        assert!(!c.use_rslora && !c.use_dora && c.rank_pattern.is_empty());
    }

    #[test]
    fn a_missing_field_or_an_unsupported_option_names_the_file_and_the_field() {
        let e =
            read(r#"{"peft_type": "LORA", "lora_alpha": 16, "target_modules": "q"}"#).unwrap_err();
        assert!(
            e.starts_with("a/adapter_config.json: missing field `r`"),
            "{e}"
        );
        let e = read(&GOOD.replace("\"r\": 8", "\"r\": 8, \"use_dora\": true")).unwrap_err();
        assert_eq!(e, "a/adapter_config.json: use_dora = true is not supported");
        let e = read(&GOOD.replace("LORA", "IA3")).unwrap_err();
        assert_eq!(
            e,
            "a/adapter_config.json: peft_type \"IA3\" is not supported"
        );
        let e = read(&GOOD[..20]).unwrap_err();
        assert!(
            e.contains("adapter_config.json") && e.contains("line 1"),
            "{e}"
        );
    }
}
