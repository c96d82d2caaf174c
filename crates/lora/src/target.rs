//! Choosing which linear layers get an adapter: presets per backbone family and path patterns.

use serde::{Deserialize, Serialize};

/// Named groups of projections. Llama, Qwen2 and Gemma2 (as exported by Hugging Face
/// transformers, and hence by the backbone crate) all use the same module names, so one preset
/// serves every family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// `q_proj`, `k_proj`, `v_proj`, `o_proj`.
    Attention,
    /// Only `q_proj` and `v_proj` (the original LoRA paper's choice and PEFT's default for Llama).
    QueryValue,
    /// `gate_proj`, `up_proj`, `down_proj`.
    Mlp,
    /// Attention and MLP projections (PEFT's `"all-linear"`, which leaves the output head out).
    All,
}

impl Preset {
    /// The module names (last path segment) the preset selects.
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Preset::Attention => &["q_proj", "k_proj", "v_proj", "o_proj"],
            Preset::QueryValue => &["q_proj", "v_proj"],
            Preset::Mlp => &["gate_proj", "up_proj", "down_proj"],
            Preset::All => &[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        }
    }

    /// Parses `attention`, `qv`, `mlp` or `all`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "attention" | "attn" => Some(Preset::Attention),
            "qv" | "query_value" => Some(Preset::QueryValue),
            "mlp" => Some(Preset::Mlp),
            "all" | "all-linear" | "all_linear" => Some(Preset::All),
            _ => None,
        }
    }
}

/// A set of patterns over layer paths (`model.layers.3.self_attn.q_proj`).
///
/// A pattern without `*` follows PEFT's `target_modules` rule: it matches a path equal to it or
/// ending in `.` + pattern (`q_proj` matches every query projection, `layers.0.mlp.up_proj` only
/// that one). A pattern with `*` is a glob over the whole path, where `*` matches any run of
/// characters (`model.layers.*.mlp.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetModules {
    /// The patterns; a path matches when any pattern does.
    pub patterns: Vec<String>,
}

impl TargetModules {
    /// Targets from explicit patterns.
    pub fn new<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    /// The modules of a preset.
    pub fn preset(preset: Preset) -> Self {
        Self::new(preset.modules().iter().copied())
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| pattern_matches(p, path))
    }
}

impl From<Preset> for TargetModules {
    fn from(p: Preset) -> Self {
        Self::preset(p)
    }
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    if pattern.contains('*') {
        glob(pattern.as_bytes(), path.as_bytes())
    } else {
        path == pattern
            || path
                .strip_suffix(pattern)
                .is_some_and(|head| head.ends_with('.'))
    }
}

/// `*`-only glob, iterative with one backtrack point (linear in practice for paths).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pattern_matches_whole_segments_only() {
        let t = TargetModules::new(["q_proj"]);
        assert!(t.matches("model.layers.0.self_attn.q_proj"));
        assert!(t.matches("q_proj"));
        assert!(!t.matches("model.layers.0.self_attn.xq_proj"));
        assert!(!t.matches("model.layers.0.self_attn.k_proj"));
    }

    #[test]
    fn glob_pattern_matches_the_whole_path() {
        let t = TargetModules::new(["model.layers.*.mlp.*"]);
        assert!(t.matches("model.layers.11.mlp.down_proj"));
        assert!(!t.matches("model.layers.11.self_attn.q_proj"));
        assert!(!t.matches("lm_head"));
        let first = TargetModules::new(["model.layers.0.*"]);
        assert!(first.matches("model.layers.0.mlp.up_proj"));
        assert!(!first.matches("model.layers.10.mlp.up_proj"));
    }

    #[test]
    fn presets_select_their_projections() {
        let attn = TargetModules::preset(Preset::Attention);
        assert!(attn.matches("model.layers.1.self_attn.o_proj"));
        assert!(!attn.matches("model.layers.1.mlp.gate_proj"));
        let all = TargetModules::preset(Preset::All);
        assert!(all.matches("model.layers.1.mlp.gate_proj"));
        assert!(!all.matches("lm_head"));
        assert_eq!(Preset::parse("all-linear"), Some(Preset::All));
    }
}
