//! Chat prompt templates of the supported backbone families, rendered as plain strings.
//!
//! A fine-tuning example is a single user turn followed by the assistant's answer. The prompt
//! side is [`ChatConfig::format_prompt`]: it renders exactly what the Hugging Face chat template of
//! the family renders for `[system?, user]` with `add_generation_prompt=True`. The target side is
//! the answer text followed by [`ChatTemplate::answer_suffix`] (the end-of-turn marker), so a
//! model that learned the target stops by itself; [`ChatTemplate::stop_strings`] lists the
//! strings at which greedy generation is cut.
//!
//! ```
//! use chat_template::{ChatConfig, ChatTemplate};
//! let chat = ChatConfig::new(ChatTemplate::ChatMl);
//! assert_eq!(
//!     chat.format_prompt(None, "Hi"),
//!     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
//! );
//! ```
//!
//! Special tokens appear as text (`<|im_start|>`); tokenizers split them out of the text as added
//! tokens, so the prompt must be encoded *without* adding special tokens again (Llama 3's
//! `<|begin_of_text|>` and Gemma's `<bos>` are already part of the string).
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// SmolLM2-Instruct's default system prompt: its HF chat template inserts this system turn when
/// the conversation has none. Set [`ChatConfig::default_system`] to it to reproduce the template
/// byte for byte; the default config leaves it out (shorter prompts, and the model fine-tunes
/// fine either way).
pub const SMOLLM2_DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Qwen2.5-Instruct's default system prompt (inserted by its chat template when none is given).
pub const QWEN25_DEFAULT_SYSTEM: &str =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/// Qwen2-Instruct's default system prompt (inserted by its chat template when none is given).
pub const QWEN2_DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// The prompt layout of a backbone family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChatTemplate {
    /// ChatML (SmolLM2, Qwen2, Qwen2.5):
    /// `<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n`.
    #[default]
    ChatMl,
    /// Llama 3 Instruct:
    /// `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>`
    /// `<|start_header_id|>assistant<|end_header_id|>\n\n` (contents trimmed, as the template does).
    Llama3,
    /// Gemma / Gemma 2 Instruct: `<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n`.
    /// Gemma has no system role: a system text is put before the user text, separated by a blank
    /// line (the usual workaround; the HF template raises an error instead).
    Gemma,
    /// No chat markup, for base models and the tiny random models of the smoke suite:
    /// `{system}\n\n{user}\n`, answer ends with a newline.
    Plain,
}

impl ChatTemplate {
    /// All templates, in declaration order.
    pub const ALL: [ChatTemplate; 4] = [Self::ChatMl, Self::Llama3, Self::Gemma, Self::Plain];

    /// The template's name as used in configs (`chat_ml`, `llama3`, `gemma`, `plain`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatMl => "chat_ml",
            Self::Llama3 => "llama3",
            Self::Gemma => "gemma",
            Self::Plain => "plain",
        }
    }

    /// Parses a template name or a model family name, case-insensitively: `chat_ml`/`chatml`,
    /// `smollm`, `smollm2`, `qwen`, `qwen2`, `qwen2.5` give ChatML; `llama3`, `llama-3`, `llama`
    /// give Llama 3; `gemma`, `gemma2` give Gemma; `plain`/`none` give Plain.
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', ' '], "");
        match n.as_str() {
            "chatml" | "smollm" | "smollm2" | "qwen" | "qwen2" | "qwen2.5" => Some(Self::ChatMl),
            "llama3" | "llama" | "llama3.1" | "llama3.2" => Some(Self::Llama3),
            "gemma" | "gemma2" => Some(Self::Gemma),
            "plain" | "none" => Some(Self::Plain),
            _ => None,
        }
    }

    /// The text appended to the answer in a training target: the end-of-turn marker, so the model
    /// learns to stop.
    pub fn answer_suffix(self) -> &'static str {
        match self {
            Self::ChatMl => "<|im_end|>",
            Self::Llama3 => "<|eot_id|>",
            Self::Gemma => "<end_of_turn>",
            Self::Plain => "\n",
        }
    }

    /// Strings at which generated text is cut (the first is [`Self::answer_suffix`]); the answer
    /// is the text before the earliest occurrence of any of them.
    pub fn stop_strings(self) -> &'static [&'static str] {
        match self {
            Self::ChatMl => &["<|im_end|>", "<|endoftext|>", "<|im_start|>"],
            Self::Llama3 => &["<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>"],
            Self::Gemma => &["<end_of_turn>", "<eos>", "<start_of_turn>"],
            Self::Plain => &["\n"],
        }
    }

    /// Renders the prompt for an optional system text and one user turn, ending where the
    /// assistant's answer starts.
    pub fn format_prompt(self, system: Option<&str>, user: &str) -> String {
        match self {
            // SmolLM2 / Qwen template:
            // {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' +
            // message['content'] + '<|im_end|>' + '\n'}}{% endfor %}
            // {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
            Self::ChatMl => {
                let mut s = String::new();
                if let Some(sys) = system {
                    s.push_str("<|im_start|>system\n");
                    s.push_str(sys);
                    s.push_str("<|im_end|>\n");
                }
                s.push_str("<|im_start|>user\n");
                s.push_str(user);
                s.push_str("<|im_end|>\n<|im_start|>assistant\n");
                s
            }
            // Meta-Llama-3-8B-Instruct template:
            // {% for message in messages %}{% set content = '<|start_header_id|>' +
            // message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim +
            // '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}
            // {% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}
            // {{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
            Self::Llama3 => {
                let mut s = String::from("<|begin_of_text|>");
                if let Some(sys) = system {
                    s.push_str("<|start_header_id|>system<|end_header_id|>\n\n");
                    s.push_str(sys.trim());
                    s.push_str("<|eot_id|>");
                }
                s.push_str("<|start_header_id|>user<|end_header_id|>\n\n");
                s.push_str(user.trim());
                s.push_str("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
                s
            }
            // Gemma template:
            // {{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}
            // {% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}
            // {{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}
            // {% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}
            Self::Gemma => {
                let content = match system {
                    Some(sys) => format!("{}\n\n{}", sys.trim(), user.trim()),
                    None => user.trim().to_string(),
                };
                format!("<bos><start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n")
            }
            Self::Plain => match system {
                Some(sys) => format!("{sys}\n\n{user}\n"),
                None => format!("{user}\n"),
            },
        }
    }

    /// The prompt split around the user text: `head + user + tail == format_prompt(system,
    /// user)`. Truncation keeps `head` and `tail` (the chat markup) whole and cuts only `user`.
    pub fn prompt_parts(self, system: Option<&str>, user: &str) -> PromptParts {
        const SENTINEL: &str = "\u{0}";
        let full = self.format_prompt(system, SENTINEL);
        let (head, tail) = full.split_once(SENTINEL).unwrap_or((full.as_str(), ""));
        let user = match self {
            // These templates trim the message content.
            Self::Llama3 | Self::Gemma => user.trim(),
            Self::ChatMl | Self::Plain => user,
        };
        PromptParts {
            head: head.to_string(),
            user: user.to_string(),
            tail: tail.to_string(),
        }
    }

    /// Cuts generated text at the earliest stop string (the whole text when none occurs).
    pub fn cut_at_stop(self, generated: &str) -> &str {
        let end = self
            .stop_strings()
            .iter()
            .filter_map(|s| generated.find(s))
            .min()
            .unwrap_or(generated.len());
        &generated[..end]
    }
}

impl std::fmt::Display for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ChatTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| {
            format!("unknown chat template `{s}` (expected chat_ml, llama3, gemma or plain)")
        })
    }
}

/// A rendered prompt in three pieces (see [`ChatTemplate::prompt_parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptParts {
    /// Markup (and system turn) before the user text.
    pub head: String,
    /// The user text as the template inserts it.
    pub user: String,
    /// Markup after the user text, up to where the answer starts.
    pub tail: String,
}

/// A template plus the system text used when the caller gives none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// The prompt layout. Default: `chat_ml`.
    pub template: ChatTemplate,
    /// System text used when [`ChatConfig::format_prompt`] gets none. Default: none (no system
    /// turn). Use [`SMOLLM2_DEFAULT_SYSTEM`] to match SmolLM2-Instruct's HF template exactly.
    pub default_system: Option<String>,
}

impl ChatConfig {
    /// A config without default system text.
    pub fn new(template: ChatTemplate) -> Self {
        Self {
            template,
            default_system: None,
        }
    }

    /// The config that reproduces a model family's HF chat template, default system prompt
    /// included (`smollm2`, `qwen2`, `qwen2.5`; other names get no default system).
    pub fn hf_default(family: &str) -> Option<Self> {
        let template = ChatTemplate::from_name(family)?;
        let n = family
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', ' '], "");
        let default_system = match n.as_str() {
            "smollm" | "smollm2" => Some(SMOLLM2_DEFAULT_SYSTEM),
            "qwen2" => Some(QWEN2_DEFAULT_SYSTEM),
            "qwen" | "qwen2.5" => Some(QWEN25_DEFAULT_SYSTEM),
            _ => None,
        };
        Some(Self {
            template,
            default_system: default_system.map(str::to_string),
        })
    }

    /// Renders the prompt; `system` overrides [`ChatConfig::default_system`].
    pub fn format_prompt(&self, system: Option<&str>, user: &str) -> String {
        self.template
            .format_prompt(system.or(self.default_system.as_deref()), user)
    }

    /// [`ChatTemplate::prompt_parts`] with the default system text applied.
    pub fn prompt_parts(&self, system: Option<&str>, user: &str) -> PromptParts {
        self.template
            .prompt_parts(system.or(self.default_system.as_deref()), user)
    }

    /// The training target for an answer: the answer followed by the end-of-turn marker.
    pub fn format_answer(&self, answer: &str) -> String {
        format!("{answer}{}", self.template.answer_suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_without_system_matches_qwen_style_template() {
        assert_eq!(
            ChatTemplate::ChatMl.format_prompt(None, "What is 2+2?"),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn smollm2_default_reproduces_hf_template_with_its_system_prompt() {
        // SmolLM2-135M-Instruct: {% if loop.first and messages[0]['role'] != 'system' %}
        // {{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by
        // Hugging Face<|im_end|>\n' }}{% endif %} then the ChatML turns.
        let chat = ChatConfig::hf_default("SmolLM2").unwrap();
        assert_eq!(
            chat.format_prompt(None, "Hi"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        // An explicit system text replaces the default, as in the template.
        assert_eq!(
            chat.format_prompt(Some("Be brief."), "Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn default_config_has_no_hidden_system_prompt() {
        let chat = ChatConfig::default();
        assert_eq!(chat.template, ChatTemplate::ChatMl);
        assert!(!chat.format_prompt(None, "x").contains("system"));
    }

    #[test]
    fn llama3_trims_contents_and_starts_with_bos() {
        assert_eq!(
            ChatTemplate::Llama3.format_prompt(Some("Sys "), " Hello\n"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            ChatTemplate::Llama3.format_prompt(None, "Hello"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn gemma_uses_model_role_and_folds_system_into_user_turn() {
        assert_eq!(
            ChatTemplate::Gemma.format_prompt(None, "Hello"),
            "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            ChatTemplate::Gemma.format_prompt(Some("Sys"), "Hello"),
            "<bos><start_of_turn>user\nSys\n\nHello<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn plain_is_user_then_newline() {
        assert_eq!(ChatTemplate::Plain.format_prompt(None, "2+2="), "2+2=\n");
        assert_eq!(
            ChatTemplate::Plain.format_prompt(Some("S"), "q"),
            "S\n\nq\n"
        );
    }

    #[test]
    fn answer_gets_end_of_turn_marker() {
        assert_eq!(
            ChatConfig::new(ChatTemplate::ChatMl).format_answer("4"),
            "4<|im_end|>"
        );
        assert_eq!(
            ChatConfig::new(ChatTemplate::Llama3).format_answer("4"),
            "4<|eot_id|>"
        );
        assert_eq!(
            ChatConfig::new(ChatTemplate::Gemma).format_answer("4"),
            "4<end_of_turn>"
        );
        for t in ChatTemplate::ALL {
            assert_eq!(t.stop_strings()[0], t.answer_suffix());
        }
    }

    #[test]
    fn prompt_parts_concatenate_to_the_prompt() {
        for t in ChatTemplate::ALL {
            for sys in [None, Some("Sys")] {
                let p = t.prompt_parts(sys, " Tell me. ");
                assert_eq!(
                    format!("{}{}{}", p.head, p.user, p.tail),
                    t.format_prompt(sys, " Tell me. ")
                );
            }
        }
        let p = ChatTemplate::ChatMl.prompt_parts(None, "Q");
        assert_eq!(p.head, "<|im_start|>user\n");
        assert_eq!(p.tail, "<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn cut_at_stop_takes_earliest_stop_string() {
        let t = ChatTemplate::ChatMl;
        assert_eq!(t.cut_at_stop("Paris<|im_end|>\n<|im_start|>"), "Paris");
        assert_eq!(t.cut_at_stop("no stop"), "no stop");
        assert_eq!(ChatTemplate::Plain.cut_at_stop("yes\nmore"), "yes");
    }

    #[test]
    fn from_name_accepts_template_and_family_names() {
        assert_eq!(
            ChatTemplate::from_name("SmolLM2"),
            Some(ChatTemplate::ChatMl)
        );
        assert_eq!(
            ChatTemplate::from_name("qwen2.5"),
            Some(ChatTemplate::ChatMl)
        );
        assert_eq!(
            ChatTemplate::from_name("Llama-3"),
            Some(ChatTemplate::Llama3)
        );
        assert_eq!(ChatTemplate::from_name("gemma2"), Some(ChatTemplate::Gemma));
        assert_eq!(ChatTemplate::from_name("gpt2"), None);
        for t in ChatTemplate::ALL {
            assert_eq!(t.name().parse::<ChatTemplate>(), Ok(t));
        }
    }

    #[test]
    fn serde_uses_snake_case_names() {
        let json = serde_json::to_string(&ChatTemplate::ChatMl).unwrap();
        assert_eq!(json, "\"chat_ml\"");
        let cfg: ChatConfig = serde_json::from_str(r#"{"template":"llama3"}"#).unwrap();
        assert_eq!(cfg, ChatConfig::new(ChatTemplate::Llama3));
    }
}
